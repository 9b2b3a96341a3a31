//! m2m token authentication for actix.
