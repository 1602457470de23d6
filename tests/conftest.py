"""Suite-wide settings. Tests run their stack on shifted ports and in their own state folder, so a
user's running stack (default ports, `.testbed/`) is never touched."""

from __future__ import annotations

import os

os.environ.setdefault("TESTBED_PORT_OFFSET", "200")
