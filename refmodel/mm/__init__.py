"""Models of the files under mm/ in Linux 5.10."""
