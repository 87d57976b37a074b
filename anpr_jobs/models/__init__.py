"""Model versions in MLflow: the store, the registry and its champion, loading a version as a
Recognizer, and the promotion gate.

A version of ``anpr-char-classifier-<region>`` is the whole recognizer for a region; a version
alone determines how a plate is read and when its read is good enough for a ticket.
"""

from anpr_jobs.models.promotion import Promotion, Standing, promotes, promotion_gate
from anpr_jobs.models.recognizer import Recognizer, load_recognizer, read_labeled, recognizer_from
from anpr_jobs.models.registry import (
    CHAMPION,
    DEFAULT_REGION,
    MODEL_PREFIX,
    RegisteredVersion,
    VersionInfo,
    champion_version,
    default_model_uri,
    format_versions,
    list_versions,
    log_recognizer,
    model_name,
    set_champion,
    trusted_types,
    version_uri,
)
from anpr_jobs.models.store import (
    check_reachable,
    local_store_path,
    open_store,
    tracking_uri,
    use_tracking,
)

__all__ = [
    "CHAMPION",
    "DEFAULT_REGION",
    "MODEL_PREFIX",
    "Promotion",
    "Recognizer",
    "RegisteredVersion",
    "Standing",
    "VersionInfo",
    "champion_version",
    "check_reachable",
    "default_model_uri",
    "format_versions",
    "list_versions",
    "load_recognizer",
    "local_store_path",
    "log_recognizer",
    "model_name",
    "open_store",
    "promotes",
    "promotion_gate",
    "read_labeled",
    "recognizer_from",
    "set_champion",
    "tracking_uri",
    "trusted_types",
    "use_tracking",
    "version_uri",
]
