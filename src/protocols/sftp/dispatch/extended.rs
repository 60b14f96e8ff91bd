//! Extended requests (draft-ietf-secsh-filexfer-02 section 8): the OpenSSH extensions ferry
//! offers in VERSION (PROTOCOL.sftp in OpenSSH's sources), each answered here.

use russh_sftp::protocol::{Extended, StatusCode};

use super::Dispatcher;
use crate::protocols::sftp::handles::Handle;
use crate::protocols::sftp::wire::{self, MAX_DATA, MAX_PACKET};

/// What VERSION offers: extension names and their revisions.
pub(super) const OFFERED: [(&str, &str); 6] = [
    ("posix-rename@openssh.com", "1"),
    ("statvfs@openssh.com", "2"),
    ("fstatvfs@openssh.com", "2"),
    ("hardlink@openssh.com", "1"),
    ("fsync@openssh.com", "1"),
    ("limits@openssh.com", "1"),
];

impl Dispatcher {
    pub(super) async fn extended(&mut self, request: Extended) {
        let id = request.id;
        let mut data = request.data.as_slice();
        match request.request.as_str() {
            "posix-rename@openssh.com" | "hardlink@openssh.com" => {
                let (Some(from), Some(to)) = (wire::take_string(&mut data), wire::take_string(&mut data))
                else {
                    return self.status(id, StatusCode::BadMessage, "malformed request").await;
                };
                let result = match (self.path(&from), self.path(&to)) {
                    (Ok(from), Ok(to)) if request.request.starts_with("posix") => {
                        self.session.rename(&from, &to, true).await
                    }
                    (Ok(from), Ok(to)) => self.session.hard_link(&from, &to).await,
                    (Err(e), _) | (_, Err(e)) => Err(e),
                };
                self.result(id, result).await;
            }
            "statvfs@openssh.com" | "fstatvfs@openssh.com" => match self.session.capacity().await {
                Ok(c) => {
                    let values = [
                        c.block_size,
                        c.fragment_size,
                        c.blocks,
                        c.blocks_free,
                        c.blocks_available,
                        c.files,
                        c.files_free,
                        c.files_available,
                        0, // fsid: not disclosed
                        0, // flags
                        c.max_name_len,
                    ];
                    self.send_bytes(wire::extended_reply_u64s(id, &values)).await;
                }
                Err(e) => self.error(id, &e).await,
            },
            "fsync@openssh.com" => {
                let Some(handle) = wire::take_string(&mut data) else {
                    return self.status(id, StatusCode::BadMessage, "malformed request").await;
                };
                let Some(entry) = self.entry(&handle) else {
                    return self.status(id, StatusCode::Failure, "invalid handle").await;
                };
                let _exclusive = entry.order.write().await;
                let result = match &entry.handle {
                    Handle::Write(file) => file.sync().await,
                    _ => Ok(()),
                };
                self.result(id, result).await;
            }
            "limits@openssh.com" => {
                let values =
                    [MAX_PACKET as u64, MAX_DATA as u64, MAX_DATA as u64, self.limits.max_handles as u64];
                self.send_bytes(wire::extended_reply_u64s(id, &values)).await;
            }
            _ => self.status(id, StatusCode::OpUnsupported, "unsupported extension").await,
        }
    }
}
