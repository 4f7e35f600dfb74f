"""One router per resource; each reads the shared state through `deps`."""
