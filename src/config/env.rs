//! The `CYNC_*` environment layer's own checks. figment only reads the variables whose first
//! segment names a section, so a misspelt section (`CYNC_MQQT__URL`) would otherwise be ignored
//! without a word and the bridge would run on a setting the user believes they changed.

use super::{ConfigError, ENV_PREFIX, SECTIONS};

/// Fails on the first `CYNC_<SECTION>__KEY` variable whose section is not one of [`SECTIONS`].
/// Variables without `__` (the test switches, `CYNC_CONFIG`) are not config keys and pass.
pub(super) fn check_sections(
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    for (name, _) in vars {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let Some((section, _)) = rest.split_once("__") else {
            continue;
        };
        if SECTIONS.iter().any(|s| s.eq_ignore_ascii_case(section)) {
            continue;
        }
        let suggestion = closest(&section.to_ascii_lowercase(), SECTIONS).map(|s| {
            format!(
                "{ENV_PREFIX}{}__{}",
                s.to_ascii_uppercase(),
                &rest[section.len() + 2..]
            )
        });
        return Err(ConfigError::UnknownEnvSection {
            variable: name.clone(),
            suggestion,
        });
    }
    Ok(())
}

/// The candidate nearest to `word` by edit distance, if it is near enough to be a typo (at most
/// a third of the word's letters differ).
pub(super) fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::levenshtein(word, c), *c))
        .filter(|(distance, _)| *distance * 3 <= word.len().max(3))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(names: &[&str]) -> Vec<(String, String)> {
        names
            .iter()
            .map(|n| ((*n).to_owned(), "x".to_owned()))
            .collect()
    }

    #[test]
    fn a_misspelt_section_is_an_error_naming_the_variable_and_the_fix() {
        let error = check_sections(vars(&["CYNC_MQTT__URL", "CYNC_MQQT__URL"])).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("CYNC_MQQT__URL"), "{text}");
        assert!(text.contains("CYNC_MQTT__URL"), "{text}");
    }

    #[test]
    fn switches_without_a_section_separator_and_other_prefixes_are_not_config() {
        let ok = vars(&[
            "CYNC_REQUIRE_SHARED_FIXTURES",
            "CYNC_CONFIG",
            "CYNC_DATA_DIR",
            "CYNC_TELEMETRY__LISTEN",
            "HOME",
            "NOT_CYNC_MQQT__URL",
        ]);
        assert!(check_sections(ok).is_ok());
    }

    #[test]
    fn a_name_far_from_every_section_gets_no_suggestion() {
        let error = check_sections(vars(&["CYNC_WIBBLEWOBBLE__X"])).unwrap_err();
        assert!(matches!(
            error,
            ConfigError::UnknownEnvSection {
                suggestion: None,
                ..
            }
        ));
        assert_eq!(closest("urll", &["url", "client_id"]), Some("url"));
    }
}
