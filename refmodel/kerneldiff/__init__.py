"""``refmodel kernel-diff``: the VMA model against the live kernel of the host."""
