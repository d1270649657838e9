"""What the audit log masks before an event is stored: the rules of ``apps.core.masking``.

The masking primitives are pure functions on the ground floor (``core``), so the
JSON log formatter uses the very same rules without importing the audit app.
This module names them for the audit service and its exports.
"""

from __future__ import annotations

from apps.core.masking import MASK, MAX_DEPTH, is_secret_key, mask_mapping, mask_text, mask_value

__all__ = ["MASK", "MAX_DEPTH", "is_secret_key", "mask_mapping", "mask_text", "mask_value"]
