"""Models of arch/ code; only x86-64 is modelled."""
