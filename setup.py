"""Packaging for chatire, a realtime chat server on Twisted."""

from setuptools import find_packages, setup

setup(
    name="chatire",
    version="0.1.0",
    description="Realtime chat server on Twisted: Klein API, Autobahn WebSockets, "
    "RabbitMQ fanout, PostgreSQL or SQLite store",
    python_requires=">=3.11",
    packages=[*find_packages(exclude=["tests", "tests.*", "bench", "bench.*"]),
              "twisted.plugins", "chatire.web"],
    # The browser UI lives in web/ and installs as chatire/web/ (package data).
    package_dir={"chatire.web": "web"},
    package_data={"chatire.web": ["*.html", "*.css", "*.js", "*.svg", "*.png", "*.ico",
                                  "js/*.js", "js/*/*.js"]},
    # Capped at the newest versions the suite ran on: chatire/_internals reaches into
    # Twisted, Autobahn, pika and txpostgres (tests/unit/test_internals.py pins those
    # names); raise a cap once the suite passes on the newer release.
    install_requires=[
        "twisted[tls]>=24.7,<=26.10.0",
        "klein>=24.8,<=24.8.0",
        "autobahn>=24.4,<=26.11.1",
        "pika>=1.3,<=1.4.4",
        "txpostgres>=1.7,<=1.7.0",
        "psycopg2-binary>=2.9,<=2.9.13",
        "attrs>=23.1,<=26.1.0",
        "argon2-cffi>=23.1,<=25.1.0",
        "prometheus-client>=0.20,<=0.26.0",
        "zope.interface>=6,<=8.7",
        "jsonschema>=4.18,<=4.26.0",
        # its ranked password list (the 10,000 most common are refused)
        "zxcvbn>=4.4.28,<=4.5.0",
    ],
    extras_require={
        "test": [
            "pytest>=8,<10",
            "pytest-twisted>=1.14,<2",
            "pytest-timeout>=2.3",
            "pytest-xdist>=3.5,<4",
            "treq>=24.9",
            "hypothesis>=6.100",
            "schemathesis>=4.0,<5",
            "mypy>=1.10",
            "mypy-zope>=1.0.5",
            "ruff>=0.6",
            "playwright>=1.48,<2",  # Page.route_web_socket
            "types-psycopg2",
        ],
    },
    entry_points={"console_scripts": ["chatire = chatire.admin:main"]},
)
