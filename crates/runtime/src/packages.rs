//! Which package folder serves which channel.
//!
//! A package's manifest names its channel, but a name is only a claim: a
//! folder that calls itself `whatsapp` must not receive WhatsApp's secrets.
//! The operator's configuration decides. A channel with a `[channels.X]`
//! table is served by the folder its `package` names, or by the folder
//! named after the channel in the adapters directory; any other package
//! claiming it is refused. A channel nobody configured (it gets no
//! settings, secrets or endpoints) loads from the single folder claiming
//! it; two folders claiming it are both refused.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::manifest::Manifest;
use crate::{ChannelGrant, RuntimeError};

/// A package folder and its manifest.
#[derive(Debug, Clone)]
pub struct Package {
    /// The folder, canonical where it exists.
    pub dir: PathBuf,
    /// Its parsed manifest.
    pub manifest: Manifest,
}

impl Package {
    /// Read the package whose manifest is at `manifest_path`.
    pub fn read(manifest_path: &Path) -> Result<Self, RuntimeError> {
        let manifest = Manifest::load(manifest_path)?;
        let dir = canonical(manifest_path.parent().unwrap_or(Path::new(".")));
        Ok(Self { dir, manifest })
    }

    /// Its `manifest.toml`.
    pub fn manifest_path(&self) -> PathBuf {
        self.dir.join("manifest.toml")
    }

    fn channel(&self) -> &str {
        &self.manifest.adapter.name
    }
}

/// What a directory scan found: the packages to load and the refusals.
#[derive(Debug, Default)]
pub struct Assignment {
    /// One package per channel.
    pub packages: Vec<Package>,
    /// Packages refused, and configured packages that could not be read.
    pub refused: Vec<RuntimeError>,
}

fn canonical(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_owned())
}

/// The folder the operator assigned to `channel`, if the channel is
/// configured: its `package` (relative to `adapters_dir` unless absolute),
/// or `adapters_dir/<channel>`.
pub fn assigned_dir(
    channel: &str,
    adapters_dir: &Path,
    grants: &HashMap<String, ChannelGrant>,
) -> Option<PathBuf> {
    let grant = grants.get(channel)?;
    let dir = match &grant.package {
        Some(package) if package.is_absolute() => package.clone(),
        Some(package) => adapters_dir.join(package),
        None => adapters_dir.join(channel),
    };
    Some(canonical(&dir))
}

/// Refuse `package` if its channel is configured to another folder.
pub fn check_assigned(
    package: &Package,
    grants: &HashMap<String, ChannelGrant>,
) -> Result<(), RuntimeError> {
    let parent = package.dir.parent().unwrap_or(Path::new("."));
    match assigned_dir(package.channel(), parent, grants) {
        Some(expected) if expected != package.dir => Err(RuntimeError::UnassignedPackage {
            channel: package.channel().to_owned(),
            expected,
            found: package.manifest_path(),
        }),
        _ => Ok(()),
    }
}

/// Scan `adapters_dir` (and the folders configured channels name) and
/// decide which package serves each channel.
pub fn assign(
    adapters_dir: &Path,
    grants: &HashMap<String, ChannelGrant>,
) -> Result<Assignment, RuntimeError> {
    let entries = std::fs::read_dir(adapters_dir).map_err(|source| RuntimeError::Io {
        path: adapters_dir.to_owned(),
        source,
    })?;
    let mut folders: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| canonical(&entry.path()))
        .filter(|dir| dir.join("manifest.toml").is_file())
        .collect();
    let mut assignment = Assignment::default();
    for (channel, grant) in grants {
        if grant.package.is_none() {
            continue;
        }
        let Some(dir) = assigned_dir(channel, adapters_dir, grants) else {
            continue;
        };
        if !dir.join("manifest.toml").is_file() {
            assignment.refused.push(RuntimeError::Io {
                path: dir.join("manifest.toml"),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("the package configured for channel `{channel}` has no manifest.toml"),
                ),
            });
        } else if !folders.contains(&dir) {
            folders.push(dir);
        }
    }
    folders.sort();
    folders.dedup();

    let mut claims: BTreeMap<String, Vec<Package>> = BTreeMap::new();
    for folder in folders {
        match Package::read(&folder.join("manifest.toml")) {
            Ok(package) => claims
                .entry(package.channel().to_owned())
                .or_default()
                .push(package),
            Err(error) => assignment.refused.push(error),
        }
    }
    for (channel, mut claimants) in claims {
        match assigned_dir(&channel, adapters_dir, grants) {
            Some(expected) => {
                let chosen = claimants
                    .iter()
                    .position(|p| p.dir == expected)
                    .map(|i| claimants.remove(i));
                for other in claimants {
                    assignment.refused.push(match &chosen {
                        Some(chosen) => RuntimeError::DuplicateChannel {
                            channel: channel.clone(),
                            first: chosen.manifest_path(),
                            second: other.manifest_path(),
                        },
                        None => RuntimeError::UnassignedPackage {
                            channel: channel.clone(),
                            expected: expected.clone(),
                            found: other.manifest_path(),
                        },
                    });
                }
                assignment.packages.extend(chosen);
            }
            None if claimants.len() == 1 => assignment.packages.extend(claimants),
            None => {
                let first = claimants[0].manifest_path();
                for other in &claimants[1..] {
                    assignment.refused.push(RuntimeError::DuplicateChannel {
                        channel: channel.clone(),
                        first: first.clone(),
                        second: other.manifest_path(),
                    });
                }
            }
        }
    }
    Ok(assignment)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(root: &Path, folder: &str, channel: &str) {
        let dir = root.join(folder);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("manifest.toml"),
            format!(
                "[adapter]\nname = \"{channel}\"\nversion = \"1.0.0\"\ncomponent = \"a.wasm\"\n"
            ),
        )
        .unwrap();
    }

    fn grant(package: Option<&str>) -> ChannelGrant {
        ChannelGrant {
            package: package.map(PathBuf::from),
            ..ChannelGrant::default()
        }
    }

    fn folders(assignment: &Assignment) -> Vec<String> {
        assignment
            .packages
            .iter()
            .map(|p| p.dir.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn an_impostor_of_a_configured_channel_is_refused_naming_both() {
        let root = tempfile::tempdir().unwrap();
        package(root.path(), "whatsapp", "whatsapp");
        package(root.path(), "cheap-sms", "whatsapp");
        let grants = HashMap::from([("whatsapp".to_owned(), grant(None))]);
        let assignment = assign(root.path(), &grants).unwrap();
        assert_eq!(folders(&assignment), ["whatsapp"]);
        let error = assignment.refused[0].to_string();
        assert!(
            error.contains("whatsapp/manifest.toml") && error.contains("cheap-sms/manifest.toml"),
            "{error}"
        );
    }

    #[test]
    fn the_configured_package_serves_its_channel_even_from_another_folder() {
        let root = tempfile::tempdir().unwrap();
        package(root.path(), "whatsapp", "whatsapp");
        package(root.path(), "whatsapp-v2", "whatsapp");
        let grants = HashMap::from([("whatsapp".to_owned(), grant(Some("whatsapp-v2")))]);
        let assignment = assign(root.path(), &grants).unwrap();
        assert_eq!(folders(&assignment), ["whatsapp-v2"]);
        assert!(matches!(
            assignment.refused[0],
            RuntimeError::DuplicateChannel { .. }
        ));
    }

    #[test]
    fn a_configured_channel_served_only_from_the_wrong_folder_is_refused() {
        let root = tempfile::tempdir().unwrap();
        package(root.path(), "not-whatsapp", "whatsapp");
        let grants = HashMap::from([("whatsapp".to_owned(), grant(None))]);
        let assignment = assign(root.path(), &grants).unwrap();
        assert!(assignment.packages.is_empty());
        let error = assignment.refused[0].to_string();
        assert!(
            error.contains("not-whatsapp") && error.contains("package"),
            "{error}"
        );
        let check = check_assigned(
            &Package::read(&root.path().join("not-whatsapp/manifest.toml")).unwrap(),
            &grants,
        );
        assert!(check.is_err());
    }

    #[test]
    fn two_unconfigured_claimants_are_both_refused() {
        let root = tempfile::tempdir().unwrap();
        package(root.path(), "a", "hostile");
        package(root.path(), "b", "hostile");
        package(root.path(), "line", "line");
        let assignment = assign(root.path(), &HashMap::new()).unwrap();
        assert_eq!(folders(&assignment), ["line"]);
        let error = assignment.refused[0].to_string();
        assert!(
            error.contains("a/manifest.toml") && error.contains("b/manifest.toml"),
            "{error}"
        );
    }

    #[test]
    fn a_missing_configured_package_is_reported() {
        let root = tempfile::tempdir().unwrap();
        let grants = HashMap::from([("whatsapp".to_owned(), grant(Some("/nonexistent/whatsapp")))]);
        let assignment = assign(root.path(), &grants).unwrap();
        assert!(
            assignment.refused[0]
                .to_string()
                .contains("configured for channel `whatsapp`")
        );
    }
}
