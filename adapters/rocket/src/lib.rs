//! m2m token authentication for rocket.
