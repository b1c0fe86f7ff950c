"""Reading what the authors of TR² published (their detector, ...) into tr2's own formats."""
