"""Mail content: header scanning, aliases and (later) header rewriting."""
