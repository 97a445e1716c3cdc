//! Skills with proficiency levels, call requirements and time-based skill expansion.
//!
//! A skill is a name such as `language=ru` or `service=passport`; the part
//! before `=` is its category (`language`, `service`). Agents hold skills at
//! a proficiency level, and a call requires skills at a minimum level.
//! Queue steps relax a call's requirements by category as the call waits.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::config::Destination;
use crate::error::ParseError;

/// An agent's skills: skill name to proficiency level.
pub type Skills = BTreeMap<String, u8>;

/// A skill a call requires, at `min_level` or above. A level of 0 accepts
/// any agent that has the skill at all.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SkillRequirement {
    pub skill: String,
    pub min_level: u8,
}

impl SkillRequirement {
    pub fn new(skill: &str, min_level: u8) -> SkillRequirement {
        SkillRequirement {
            skill: skill.to_owned(),
            min_level,
        }
    }

    /// Returns the part of the skill name before `=`, or the whole name.
    pub fn category(&self) -> &str {
        category_of(&self.skill)
    }

    fn is_met_by(&self, skills: &Skills) -> bool {
        skills
            .get(&self.skill)
            .is_some_and(|level| *level >= self.min_level)
    }
}

fn category_of(skill: &str) -> &str {
    skill
        .split_once('=')
        .map_or(skill, |(category, _)| category)
}

/// Parses `skill:level` (`language=ru:5`), or `skill` alone for level 0.
impl FromStr for SkillRequirement {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<SkillRequirement, ParseError> {
        let (skill, level) = match text.rsplit_once(':') {
            Some((skill, level)) => (skill, parse_level(text, level)?),
            None => (text, 0),
        };
        if skill.is_empty() {
            return Err(ParseError::EmptySkill {
                text: text.to_owned(),
            });
        }
        Ok(SkillRequirement::new(skill, level))
    }
}

impl fmt::Display for SkillRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.skill, self.min_level)
    }
}

fn parse_level(text: &str, level: &str) -> Result<u8, ParseError> {
    level.trim().parse().map_err(|_| ParseError::InvalidLevel {
        text: text.to_owned(),
    })
}

/// Which of a call's requirements of one category a step keeps, and at what level.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CategoryLevel {
    pub category: String,
    /// The minimum level during the step; `None` keeps the call's own minimum.
    pub min_level: Option<u8>,
}

/// Parses `service>=3` or a bare category such as `language`.
impl FromStr for CategoryLevel {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<CategoryLevel, ParseError> {
        let (category, min_level) = match text.split_once(">=") {
            Some((category, level)) => (category.trim(), Some(parse_level(text, level)?)),
            None => (text.trim(), None),
        };
        if category.is_empty() {
            return Err(ParseError::EmptySkill {
                text: text.to_owned(),
            });
        }
        Ok(CategoryLevel {
            category: category.to_owned(),
            min_level,
        })
    }
}

/// What a step asks of the agent, or where the call goes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum StepRule {
    /// The call's requirements in the listed categories, at the listed
    /// levels. Requirements of categories not listed are dropped, so an
    /// empty list accepts any member of the queue.
    Skills(Vec<CategoryLevel>),
    /// Any member of the queue, whatever the call requires.
    AnyAgent,
    /// The call leaves the queue for this destination. Callback requests
    /// ignore overflow steps because the caller is no longer on the line.
    Overflow(Destination),
}

/// One step of skill expansion: from `after` (measured from enqueue) until
/// the next step, the call is routed by `rule`. Before the first step, and
/// in queues without steps, the call's own requirements apply unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RoutingStep {
    pub after: Duration,
    pub rule: StepRule,
}

impl RoutingStep {
    pub fn new(after: Duration, rule: StepRule) -> RoutingStep {
        RoutingStep { after, rule }
    }
}

/// Returns the index of the step in force after waiting `waited`. `steps`
/// must be sorted by `after`.
pub(crate) fn active_step(steps: &[RoutingStep], waited: Duration) -> Option<usize> {
    steps.iter().rposition(|step| step.after <= waited)
}

/// Returns the requirements a call has under `rule`, or its own without a step.
pub(crate) fn effective_requirements(
    own: &[SkillRequirement],
    rule: Option<&StepRule>,
) -> Vec<SkillRequirement> {
    let Some(rule) = rule else {
        return own.to_vec();
    };
    let StepRule::Skills(levels) = rule else {
        return Vec::new();
    };
    own.iter()
        .filter_map(|requirement| {
            let kept = levels
                .iter()
                .find(|level| level.category == requirement.category())?;
            Some(SkillRequirement {
                skill: requirement.skill.clone(),
                min_level: kept.min_level.unwrap_or(requirement.min_level),
            })
        })
        .collect()
}

/// Returns whether `skills` meet every requirement.
pub(crate) fn qualifies(skills: &Skills, requirements: &[SkillRequirement]) -> bool {
    requirements.iter().all(|r| r.is_met_by(skills))
}

/// Returns the summed proficiency of `skills` in the required skills.
pub(crate) fn proficiency(skills: &Skills, requirements: &[SkillRequirement]) -> u32 {
    requirements
        .iter()
        .filter_map(|r| skills.get(&r.skill))
        .map(|level| u32::from(*level))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requirement(text: &str) -> SkillRequirement {
        text.parse().unwrap()
    }

    #[test]
    fn requirement_parses_skill_and_level() {
        let parsed = requirement("language=ru:5");
        assert_eq!(parsed, SkillRequirement::new("language=ru", 5));
        assert_eq!(parsed.category(), "language");
        assert_eq!(requirement("vip"), SkillRequirement::new("vip", 0));
    }

    #[test]
    fn requirement_rejects_bad_level() {
        assert!("language=ru:high".parse::<SkillRequirement>().is_err());
        assert!("language=ru:300".parse::<SkillRequirement>().is_err());
        assert!(":3".parse::<SkillRequirement>().is_err());
    }

    #[test]
    fn category_level_parses() {
        let level: CategoryLevel = "service>=3".parse().unwrap();
        assert_eq!(level.category, "service");
        assert_eq!(level.min_level, Some(3));
        let bare: CategoryLevel = "language".parse().unwrap();
        assert_eq!(bare.min_level, None);
    }

    #[test]
    fn step_keeps_listed_categories_only() {
        let own = [
            requirement("service=passport:4"),
            requirement("language=ru:2"),
        ];
        let rule = StepRule::Skills(vec!["service>=1".parse().unwrap()]);
        let relaxed = effective_requirements(&own, Some(&rule));
        assert_eq!(relaxed, [SkillRequirement::new("service=passport", 1)]);
        assert!(effective_requirements(&own, Some(&StepRule::AnyAgent)).is_empty());
        assert_eq!(effective_requirements(&own, None), own);
    }

    #[test]
    fn active_step_follows_waiting_time() {
        let steps = [
            RoutingStep::new(Duration::from_secs(30), StepRule::AnyAgent),
            RoutingStep::new(Duration::from_secs(60), StepRule::AnyAgent),
        ];
        assert_eq!(active_step(&steps, Duration::from_secs(29)), None);
        assert_eq!(active_step(&steps, Duration::from_secs(30)), Some(0));
        assert_eq!(active_step(&steps, Duration::from_secs(90)), Some(1));
    }
}
