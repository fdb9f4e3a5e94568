//! Tests every [`super::Store`] must pass; each backend's tests call these.
// SKELETON: helper B writes the suite; helper S runs it against S3.
