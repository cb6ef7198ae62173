"""The register's figures for ``/metrics``: the name index, the webhook queue.

``sor_name_index_build_seconds`` is observed by ``hierarchy.search.names`` at each build
of a worker's name index (its count is the number of builds, its sum their time);
``sor_name_index_organisations`` is the size of the worker's current index;
``sor_name_index_patches`` how many times it was patched from the change feed instead of
rebuilt (``hierarchy.search.patches``); ``sor_item_cache_items`` the organisations whose
rendered item the worker keeps and ``sor_item_cache_rendered`` by result (``kept``: taken as
kept, ``rendered``: made from the row) the items of computed lookups (``hierarchy.items``).
"""

from __future__ import annotations

from flask import Flask

from hierarchy.items import ITEMS
from hierarchy.search.names import NAMES
from hierarchy.webhooks.models import WebhookDelivery
from sorregistry import metrics


def _name_index_size() -> float:
    index = NAMES.index
    return 0.0 if index is None else float(len(index))


def init_app(app: Flask) -> None:
    metrics.sample(app, "sor_name_index_organisations",
                   "Organisations in the worker's name index", _name_index_size)
    metrics.sample(app, "sor_name_index_patches",
                   "Times the worker's name index was patched from the change feed",
                   lambda: float(NAMES.patches))
    metrics.sample(app, "sor_item_cache_items",
                   "Organisations whose rendered lookup item the worker keeps",
                   lambda: float(len(ITEMS.entries)))
    metrics.sample(app, "sor_item_cache_pages",
                   "Pages of computed lists whose items' array the worker keeps",
                   lambda: float(len(ITEMS.pages)))
    metrics.sample(app, "sor_item_cache_rendered",
                   "Items of computed lookups, taken as kept or rendered from their row",
                   lambda: {("kept",): float(ITEMS.hits), ("rendered",): float(ITEMS.misses)},
                   labels=("result",))
    metrics.register_collector(app, "webhooks", metrics.queue_collector(
        "webhook_deliveries", "Webhook deliveries", WebhookDelivery))
