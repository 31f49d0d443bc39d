"""The browser UI's files: a fixed set, found once, served one file at a time, never listed."""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from twisted.python.filepath import FilePath
from twisted.web.static import File


class UIFile(File):
    """One of the UI's files; a leaf, so no path below it is ever looked up."""

    isLeaf = True


class UIFiles:
    """The regular files under the UI's folder, by their URL path ("" is index.html).

    The set is taken once, when first asked; anything else, a folder included,
    is not one of them (no directory listing, no ``..``, no NUL: no lookup at all).
    """

    def __init__(self, root: FilePath[str]) -> None:
        self.root = root
        self._files: dict[str, FilePath[str]] | None = None

    def files(self) -> dict[str, FilePath[str]]:
        if self._files is None:
            found: dict[str, FilePath[str]] = {}
            if self.root.isdir():
                for path in self.root.walk():
                    if path == self.root:
                        continue
                    parts = path.segmentsFrom(self.root)
                    if path.isfile() and not any(p.startswith(".") for p in parts):
                        found["/".join(parts)] = path
            if "index.html" in found:
                found[""] = found["index.html"]
            self._files = found
        return self._files

    def find(self, url_path: bytes) -> FilePath[str] | None:
        """The file of a request path (percent-encoded, starting with ``/``), or None."""
        segments = url_path.split(b"?", 1)[0].split(b"/")[1:]
        try:
            name = "/".join(unquote_to_bytes(s).decode("utf-8") for s in segments)
        except UnicodeDecodeError:
            return None
        return self.files().get(name)

    def resource(self, path: FilePath[str]) -> UIFile:
        """A resource serving one file with File's content types, ranges and HEAD."""
        return UIFile(path.path)
