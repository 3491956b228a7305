//! Operators on dense arrays.
