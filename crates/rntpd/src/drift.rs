//! The drift file: the clock's frequency error in ppm, one number, as ntpd writes it.
//!
//! Written atomically: the new value goes to `FILE.tmp`, is fsynced, then renamed over `FILE`
//! (and the directory fsynced), so a crash or power loss at any point leaves either the old
//! file or the new one, never a torn one. Parsing and formatting are the core's
//! (`rntp_proto::discipline`); this module only does the file I/O.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rntp_proto::discipline::{format_drift, parse_drift};

/// Reads the frequency from a drift file. `Ok(None)` when the file does not exist (first run).
pub fn read(path: &Path) -> io::Result<Option<f64>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    parse_drift(&text)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))
}

/// Writes the frequency atomically (see the module docs). A failed write removes its temporary
/// file again (a full disk must not leave 0-byte `.tmp` files behind).
pub fn write(path: &Path, freq_ppm: f64) -> io::Result<()> {
    let tmp = tmp_path(path);
    let staged = (|| {
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
        f.write_all(format_drift(freq_ppm).as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = staged {
        // Only a file we created: the temporary's place may be taken by something else (a
        // directory, in the test below), which is not ours to remove.
        if fs::symlink_metadata(&tmp).is_ok_and(|m| m.is_file()) {
            let _ = fs::remove_file(&tmp);
        }
        return Err(e);
    }
    // Make the rename itself durable.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ntp.drift");
        assert_eq!(read(&path).unwrap(), None, "no file yet is not an error");
        write(&path, -12.345).unwrap();
        let back = read(&path).unwrap().unwrap();
        assert!((back + 12.345).abs() < 1e-3, "{back}");
        write(&path, 3.5).unwrap();
        assert!((read(&path).unwrap().unwrap() - 3.5).abs() < 1e-3);
        assert!(!tmp_path(&path).exists(), "temporary file left behind");
    }

    #[test]
    fn crash_during_write_leaves_the_old_file_intact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ntp.drift");
        write(&path, 7.25).unwrap();
        // A crash after writing part of the new value but before the rename: the temporary
        // file holds garbage, the real one is untouched.
        fs::write(tmp_path(&path), b"12.3").unwrap();
        assert!((read(&path).unwrap().unwrap() - 7.25).abs() < 1e-3);
        // The next write replaces the stale temporary file.
        write(&path, 1.0).unwrap();
        assert!((read(&path).unwrap().unwrap() - 1.0).abs() < 1e-3);
    }

    #[test]
    fn unwritable_directory_is_an_error_and_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ntp.drift");
        write(&path, 2.0).unwrap();
        // The temporary file's place is taken by a directory: the write fails before the
        // rename, and the drift file keeps its value.
        fs::create_dir(tmp_path(&path)).unwrap();
        assert!(write(&path, 99.0).is_err());
        assert!((read(&path).unwrap().unwrap() - 2.0).abs() < 1e-3);
    }

    #[test]
    fn failed_write_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        // The target is a directory: the rename fails after the temporary file was written.
        let path = dir.path().join("ntp.drift");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("x"), "keep").unwrap();
        assert!(write(&path, 1.0).is_err());
        assert!(!tmp_path(&path).exists(), "temporary file left behind");
    }

    #[test]
    fn garbage_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ntp.drift");
        fs::write(&path, "not a number\n").unwrap();
        let err = read(&path).unwrap_err();
        assert!(err.to_string().contains("ntp.drift"), "{err}");
    }
}
