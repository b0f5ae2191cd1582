//! Flow reconstruction tests.
