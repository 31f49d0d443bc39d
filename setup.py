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
    install_requires=[
        "twisted[tls]>=24.7,<27",
        "klein>=24.8,<25",
        "autobahn>=24.4,<27",
        "pika>=1.3,<2",
        "txpostgres>=1.7,<2",
        "psycopg2-binary>=2.9,<3",
        "attrs>=23.1",
        "argon2-cffi>=23.1,<26",
        "prometheus-client>=0.20,<1",
        "zope.interface>=6",
        "jsonschema>=4.18,<5",
        # its ranked password list (the 10,000 most common are refused)
        "zxcvbn>=4.4.28,<5",
    ],
    extras_require={
        "test": [
            "pytest>=8,<10",
            "pytest-twisted>=1.14,<2",
            "pytest-timeout>=2.3",
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
