//! The prompts and music on hold built into the binary, written to the
//! data directory at start so the relay plays them like any other file,
//! and a cache of decoded prompts shared by every call.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Error of preparing the sounds.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SoundsError {
    #[error("cannot write the built-in sound {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Load(#[from] media::PromptError),
}

macro_rules! prompt {
    ($name:literal) => {
        (
            concat!("en/", $name, ".wav"),
            include_bytes!(concat!("../../../configs/sounds/en/", $name, ".wav")).as_slice(),
        )
    };
}

/// Relative path and content of every built-in sound; scripts/make-sounds
/// makes them.
const BUILT_IN: &[(&str, &[u8])] = &[
    (
        "music-on-hold.wav",
        include_bytes!("../../../configs/sounds/music-on-hold.wav").as_slice(),
    ),
    prompt!("position-before"),
    prompt!("position-after"),
    prompt!("position-many"),
    prompt!("wait-before"),
    prompt!("wait-under-minute"),
    prompt!("minute"),
    prompt!("minutes"),
    prompt!("please-hold"),
    prompt!("sorry-no-agent"),
    prompt!("voicemail-greeting"),
    prompt!("callback-confirmed"),
    prompt!("callback-agent"),
    prompt!("survey-question"),
    prompt!("survey-invalid"),
    prompt!("survey-thanks"),
    prompt!("survey-goodbye"),
    prompt!("beep"),
    prompt!("0"),
    prompt!("1"),
    prompt!("2"),
    prompt!("3"),
    prompt!("4"),
    prompt!("5"),
    prompt!("6"),
    prompt!("7"),
    prompt!("8"),
    prompt!("9"),
    prompt!("10"),
    prompt!("11"),
    prompt!("12"),
    prompt!("13"),
    prompt!("14"),
    prompt!("15"),
    prompt!("16"),
    prompt!("17"),
    prompt!("18"),
    prompt!("19"),
    prompt!("20"),
    prompt!("30"),
    prompt!("40"),
    prompt!("50"),
    prompt!("60"),
    prompt!("70"),
    prompt!("80"),
    prompt!("90"),
];

/// Returns the folder of the built-in sounds under the data directory.
pub(crate) fn built_in_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("sounds")
}

/// Writes the built-in sounds under `data_dir`, replacing files whose
/// content differs (an older version), and returns their folder.
pub(crate) fn install_built_in(data_dir: &Path) -> Result<PathBuf, SoundsError> {
    let dir = built_in_dir(data_dir);
    for (name, content) in BUILT_IN {
        let path = dir.join(name);
        if std::fs::read(&path).is_ok_and(|existing| existing == *content) {
            continue;
        }
        let write = || -> std::io::Result<()> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            // Written aside and renamed, so a call never plays half a file.
            let partial = path.with_extension("wav.partial");
            std::fs::write(&partial, content)?;
            std::fs::rename(&partial, &path)
        };
        write().map_err(|source| SoundsError::Write {
            path: path.clone(),
            source,
        })?;
    }
    Ok(dir)
}

/// Decoded prompts by path. Music on hold and announcements are the same
/// few files for every call, so each is read and resampled once.
#[derive(Default)]
pub(crate) struct PromptCache {
    prompts: HashMap<PathBuf, Arc<[i16]>>,
}

impl PromptCache {
    /// Loads `paths` now, so a bad file stops the start with its name
    /// rather than failing in a citizen's call.
    pub(crate) fn preload<'a>(
        &mut self,
        paths: impl IntoIterator<Item = &'a Path>,
    ) -> Result<(), SoundsError> {
        for path in paths {
            if !self.prompts.contains_key(path) {
                let samples = media::load_prompt(path)?;
                self.prompts.insert(path.to_path_buf(), samples);
            }
        }
        Ok(())
    }

    /// Returns the samples of `path`, loading it on first use.
    pub(crate) fn get(&mut self, path: &Path) -> Result<Arc<[i16]>, media::PromptError> {
        if let Some(samples) = self.prompts.get(path) {
            return Ok(samples.clone());
        }
        let samples = media::load_prompt(path)?;
        self.prompts.insert(path.to_path_buf(), samples.clone());
        Ok(samples)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_prompt_the_core_names_is_built_in() {
        let built_in: Vec<&str> = BUILT_IN.iter().map(|(name, _)| *name).collect();
        for name in sip_server::b2bua::prompt_names() {
            let file = format!("en/{name}.wav");
            assert!(built_in.contains(&file.as_str()), "{file} is not built in");
        }
    }

    #[test]
    fn built_in_sounds_install_and_decode() {
        let dir = tempfile::tempdir().unwrap();
        let sounds = install_built_in(dir.path()).unwrap();
        let mut cache = PromptCache::default();
        let paths: Vec<PathBuf> = BUILT_IN.iter().map(|(name, _)| sounds.join(name)).collect();
        cache.preload(paths.iter().map(PathBuf::as_path)).unwrap();
        let music = cache.get(&sounds.join("music-on-hold.wav")).unwrap();
        // 24 s of music at the 8 kHz the player sends.
        assert!(music.len() > 8000 * 20, "music is {} samples", music.len());
        // A second install finds every file current and rewrites none.
        let before = std::fs::metadata(&paths[0]).unwrap().modified().unwrap();
        install_built_in(dir.path()).unwrap();
        assert_eq!(
            std::fs::metadata(&paths[0]).unwrap().modified().unwrap(),
            before
        );
    }
}
