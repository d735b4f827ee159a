"""Software updates: the signed ``update`` command, the health gate and the rollback.

- ``download``: fetch a bundle over HTTPS with a size cap, timeouts and resume (a worker thread);
- ``updater``: the ``update`` command, its durable record, the switch and the health gate;
- ``guard``: the boot guard systemd runs before each start, from the known-good release.

The bundle format and the release layout are ``edge.release`` and ``edge.releases``;
docs/releases.md tells the whole story.
"""
