//! m2m token authentication for tower.
