"""Run the real OpenStack placement WSGI application on loopback, with SQLite, noauth2.

Run as ``python -m tests.integration.console.placement_service DB_PATH``: it prints
``PORT <n>`` once it listens on an ephemeral port, and serves until killed. A process of
its own keeps oslo.config's and SQLAlchemy's global state out of the test process.
"""

from __future__ import annotations

import sys
from wsgiref.simple_server import WSGIRequestHandler, make_server

from oslo_config import cfg
from placement import conf, deploy


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def main(database: str) -> None:
    config = cfg.ConfigOpts()
    conf.register_opts(config)
    config.set_override("connection", f"sqlite:///{database}", group="placement_database")
    config.set_override("sync_on_startup", True, group="placement_database")
    config.set_override("auth_strategy", "noauth2", group="api")
    config([], default_config_files=[])
    app = deploy.loadapp(config)
    server = make_server("127.0.0.1", 0, app, handler_class=QuietHandler)
    print(f"PORT {server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1])
