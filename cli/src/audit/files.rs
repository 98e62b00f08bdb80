//! Reads a local copy of the audit bucket into the verifier's map (object key -> bytes).

use std::collections::BTreeMap;
use std::path::Path;

/// Every file under `root`, keyed by its path relative to `root` with `/` separators (the
/// object key it had in the bucket). `root` is the folder that holds `audit/`.
pub fn read_objects(root: &Path) -> Result<BTreeMap<String, Vec<u8>>, String> {
    if !root.is_dir() {
        return Err(format!("{}: not a folder", root.display()));
    }
    if !root.join("audit").is_dir() {
        let hint = if root.join("batches").is_dir() || root.join("digests").is_dir() {
            " (this looks like one stream's folder: point at the folder that holds audit/)"
        } else {
            ""
        };
        return Err(format!("{}: no audit/ folder here{hint}", root.display()));
    }
    let mut objects = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let relative = path
                .strip_prefix(root)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let key = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            objects.insert(key, bytes);
        }
    }
    Ok(objects)
}
