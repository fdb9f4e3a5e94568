//! `replvault run`: scheduled backups, retention, `/metrics`, `/healthz`.
// SKELETON: helper O implements this module.
