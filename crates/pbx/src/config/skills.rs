//! The `[[skills]]` catalogue: the skills a centre routes on, each with a
//! description for the people who assign them. While the catalogue is
//! empty any skill name goes, as in files written before it existed.
//! Once it has an entry, every skill of an agent or a DID and every
//! category a queue step keeps must come from it, so that a mistyped
//! skill cannot leave calls waiting for an agent that no one holds.

use std::collections::HashMap;

use acd::{CategoryLevel, SkillRequirement};
use toml::Spanned;

use super::SkillDefinition;
use super::error::ConfigErrorKind;
use super::raw::{RawConfig, RawSkill};
use super::validate::{Checker, Source, Sourced, spanned};

/// Checks the catalogue entries: each name is a skill without a level,
/// given once.
pub(super) fn convert_skills(checker: &mut Checker<'_>, raw: &[RawSkill]) -> Vec<SkillDefinition> {
    let mut seen = HashMap::new();
    let mut skills = Vec::with_capacity(raw.len());
    for (index, skill) in raw.iter().enumerate() {
        let key = format!("skills[{index}].name");
        let name = spanned(&skill.name);
        checker.token(&key, &name);
        if name.value.contains(':') || name.value.starts_with('=') {
            let kind = ConfigErrorKind::InvalidSkillName {
                value: name.value.clone(),
            };
            checker.report(&key, &name.source, kind);
        }
        checker.unique(&key, "skill", &name, &mut seen);
        skills.push(SkillDefinition {
            description: skill
                .description
                .as_ref()
                .map(|text| text.get_ref().clone())
                .unwrap_or_default(),
            name: name.value,
        });
    }
    skills
}

/// Reports every skill and step category that the catalogue lacks; does
/// nothing while the catalogue is empty.
pub(super) fn check_references(
    checker: &mut Checker<'_>,
    catalogue: &[SkillDefinition],
    raw: &RawConfig,
) {
    if catalogue.is_empty() {
        return;
    }
    let known = |skill: &str| catalogue.iter().any(|entry| entry.name == skill);
    let known_category = |category: &str| {
        catalogue.iter().any(|entry| {
            let own = entry
                .name
                .split_once('=')
                .map_or(entry.name.as_str(), |(c, _)| c);
            own == category
        })
    };
    for (index, agent) in raw.agents.iter().enumerate() {
        check_skills(
            checker,
            &format!("agents[{index}].skills"),
            &agent.skills,
            &known,
        );
    }
    for (index, did) in raw.dids.iter().enumerate() {
        check_skills(
            checker,
            &format!("dids[{index}].skills"),
            &did.skills,
            &known,
        );
    }
    for (index, queue) in raw.queues.iter().enumerate() {
        for (step_index, step) in queue.steps.iter().enumerate() {
            let Some(keep) = &step.keep else { continue };
            for (position, entry) in keep.get_ref().iter().enumerate() {
                // Syntax errors are reported where the step is converted.
                let Ok(level) = entry.get_ref().parse::<CategoryLevel>() else {
                    continue;
                };
                if !known_category(&level.category) {
                    let key = format!("queues[{index}].steps[{step_index}].keep[{position}]");
                    let kind = ConfigErrorKind::UndefinedSkillCategory {
                        category: level.category,
                    };
                    checker.report(key, &Source::File(entry.span()), kind);
                }
            }
        }
    }
}

fn check_skills(
    checker: &mut Checker<'_>,
    key: &str,
    raw: &[Spanned<String>],
    known: &impl Fn(&str) -> bool,
) {
    for (position, entry) in raw.iter().enumerate() {
        // Syntax errors are reported where the list is converted.
        let Ok(requirement) = entry.get_ref().parse::<SkillRequirement>() else {
            continue;
        };
        if !known(&requirement.skill) {
            let name = Sourced {
                value: requirement.skill,
                source: Source::File(entry.span()),
            };
            let kind = ConfigErrorKind::UndefinedSkill {
                skill: name.value.clone(),
            };
            checker.report(format!("{key}[{position}]"), &name.source, kind);
        }
    }
}
