//! Keys shared by the index of waiting calls and the index of available
//! agents: a call's needs, groups of skills by queue with their hashes and
//! masks, and slots that keep their index while others come and go.

use crate::skill::SkillRequirement;

/// Returns a call's requirements each skill once at its highest level,
/// sorted by skill. Calls of one queue with equal needs are eligible for
/// the same agents, retry delays aside.
pub(crate) fn needs_of(requirements: &[SkillRequirement]) -> Vec<(&str, u8)> {
    let mut needs: Vec<(&str, u8)> = requirements
        .iter()
        .map(|r| (r.skill.as_str(), r.min_level))
        .collect();
    // Highest level first within a skill, so `dedup` keeps it.
    needs.sort_unstable_by(|a, b| a.0.cmp(b.0).then(b.1.cmp(&a.1)));
    needs.dedup_by(|later, kept| later.0 == kept.0);
    needs
}

/// A queue and sorted skill names: those a class of waiting calls needs,
/// or those a group of available agents holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GroupKey {
    pub(crate) queue: String,
    pub(crate) skills: Vec<String>,
}

impl GroupKey {
    pub(crate) fn matches(&self, queue: &str, needs: &[(&str, u8)]) -> bool {
        self.queue == queue
            && self.skills.len() == needs.len()
            && self
                .skills
                .iter()
                .zip(needs)
                .all(|(skill, (need, _))| skill == need)
    }
}

/// Returns a hash of a queue and skill names, which finds a group
/// without building its key.
pub(crate) fn group_hash<'a>(queue: &str, skills: impl IntoIterator<Item = &'a str>) -> u64 {
    skills.into_iter().fold(skill_hash(queue), |hash, skill| {
        (hash ^ skill_hash(skill)).wrapping_mul(0x0100_0000_01B3)
    })
}

/// Returns a hash of a skill name. Short names and no untrusted volume,
/// so FNV-1a does.
pub(crate) fn skill_hash(skill: &str) -> u64 {
    skill.bytes().fold(0xCBF2_9CE4_8422_2325_u64, |h, byte| {
        (h ^ u64::from(byte)).wrapping_mul(0x0100_0000_01B3)
    })
}

/// Returns the bit of a skill hash in a 128-bit skill mask.
pub(crate) fn mask_bit(hash: u64) -> u128 {
    1 << (hash % 128)
}

/// Slots reused after removal, so indexes stay valid while entries come and go.
pub(crate) struct Slab<T> {
    entries: Vec<Option<T>>,
    free: Vec<usize>,
}

impl<T> Default for Slab<T> {
    fn default() -> Slab<T> {
        Slab {
            entries: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Slab<T> {
    pub(crate) fn add(&mut self, value: T) -> usize {
        match self.free.pop() {
            Some(index) => {
                self.entries[index] = Some(value);
                index
            }
            None => {
                self.entries.push(Some(value));
                self.entries.len() - 1
            }
        }
    }

    pub(crate) fn take(&mut self, index: usize) -> Option<T> {
        let value = self.entries.get_mut(index)?.take()?;
        self.free.push(index);
        Some(value)
    }

    pub(crate) fn get(&self, index: usize) -> Option<&T> {
        self.entries.get(index)?.as_ref()
    }

    pub(crate) fn get_mut(&mut self, index: usize) -> Option<&mut T> {
        self.entries.get_mut(index)?.as_mut()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, &T)> {
        let entries = self.entries.iter().enumerate();
        entries.filter_map(|(index, entry)| Some((index, entry.as_ref()?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_keep_each_skill_at_its_highest_level() {
        let requirements = [
            SkillRequirement::new("service=tax", 2),
            SkillRequirement::new("language=ru", 1),
            SkillRequirement::new("service=tax", 4),
        ];
        assert_eq!(
            needs_of(&requirements),
            [("language=ru", 1), ("service=tax", 4)]
        );
    }

    #[test]
    fn masks_cover_their_skills() {
        let ru = mask_bit(skill_hash("language=ru"));
        let tax = mask_bit(skill_hash("service=tax"));
        assert_eq!(ru & !(ru | tax), 0);
        assert_ne!(ru, 0);
    }

    #[test]
    fn slab_reuses_freed_slots() {
        let mut slab = Slab::default();
        let a = slab.add('a');
        let b = slab.add('b');
        assert_eq!(slab.take(a), Some('a'));
        assert_eq!(slab.get(a), None);
        assert_eq!(slab.add('c'), a);
        assert_eq!(slab.get(b), Some(&'b'));
        assert_eq!(slab.iter().count(), 2);
    }
}
