"""One router per resource; each module has a `build_router()`."""
