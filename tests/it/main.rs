//! The single integration-test binary: real clients against a real ferry on 127.0.0.1:0.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod admin_changes;
mod audit;
mod audit_verify;
mod auth_http;
mod balancer;
mod cli;
mod docs;
mod emulators;
mod ftp;
mod ftp_fuzz;
mod harness;
mod http;
mod http_admin;
mod http_browser;
mod http_limits;
mod http_logins;
mod http_sessions;
mod layering;
mod ldap;
mod links;
mod login_policy;
mod mounts;
mod observability;
mod openssh;
mod paramiko;
mod postgres;
mod proxy_protocol;
mod rclone;
mod rust_client;
mod scp;
mod sftp_fuzz;
mod ssh_audit;
mod ssh_limits;
mod ssh_memory;
mod state_store;
mod storage_errors;
mod vfs_conformance;
