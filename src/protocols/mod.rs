pub mod sftp;
