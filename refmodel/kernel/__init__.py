"""Models of kernel/ (fork, exit)."""
