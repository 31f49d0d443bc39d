/** Who is signed in: the token (sessionStorage, per tab). Read marks are the server's (GET /api/chats). */

const TOKEN_KEY = "chatire.token";

export const session = {
  /** @type {{id:number, username:string, display_name:string} | null} */
  user: null,

  get token() {
    try { return sessionStorage.getItem(TOKEN_KEY); } catch { return null; }
  },
  set token(value) {
    try {
      if (value) sessionStorage.setItem(TOKEN_KEY, value);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch { /* storage disabled: the session lasts as long as the page */ }
  },
  clear() {
    this.token = null;
    this.user = null;
  },
};
