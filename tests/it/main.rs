//! The single integration-test binary: real clients against a real ferry on 127.0.0.1:0.

mod cli;
mod harness;
mod layering;
mod openssh;
mod paramiko;
mod rust_client;
mod scp;
