//! The report of `edit` (§13.3): what became of the edit, the check's problems, and the
//! restart `--restart` asked for.

use super::progress::{outcome_json, outcome_line};
use super::{Report, Shown, Style, sink};
use crate::error::Error;
use crate::ops::Results;
use crate::ops::edit::{EditResult, Edited};
use crate::service::outcome::Outcome;
use serde_json::{Value, json};

/// `edit`: the edit, and the restart's results when `--restart` restarted the service.
pub struct EditShown<'a> {
    pub edited: &'a Edited,
    pub restart: Option<(&'a Results<Outcome>, &'a [String])>,
}

impl EditShown<'_> {
    /// The failure this edit is, as every error is shown (`servicectl: NAME: … — …`).
    fn failure(&self) -> Option<Error> {
        let e = self.edited;
        let name = &e.service;
        let kept = e.kept.as_ref().map(|k| k.display().to_string());
        let recover = format!(
            "fix it with `servicectl edit {name} --recover`, or drop it with `servicectl edit {name} --discard`"
        );
        let error = match (e.result, kept) {
            (EditResult::Rejected, Some(kept)) => Error::config(format!(
                "the edit did not pass its check; {} is unchanged and the edit is kept in {kept}",
                e.file.display()
            ))
            .with_hint(recover),
            (EditResult::Conflict, Some(kept)) => Error::config(format!(
                "{} changed while the editor was open; nothing was installed and the edit is kept in {kept}",
                e.file.display()
            ))
            .with_hint(format!(
                "compare the two, then `servicectl edit {name} --recover` to edit the kept copy again, or `servicectl edit {name} --discard`"
            )),
            (EditResult::EditorFailed, kept) => {
                let what = e.editor.as_deref().unwrap_or("the editor failed");
                let error = Error::runtime(format!(
                    "{what}; {} is unchanged",
                    e.file.display()
                ));
                match kept {
                    Some(kept) => error.with_hint(format!(
                        "the kept edit stays in {kept}: {recover}"
                    )),
                    None => error.with_hint(format!("run `servicectl edit {name}` again (set $VISUAL or $EDITOR to choose the editor)")),
                }
            }
            _ => return None,
        };
        Some(error.with_service(name))
    }
}

impl Report for EditShown<'_> {
    fn json(&self) -> String {
        let mut doc = serde_json::to_value(self.edited).expect("serialisable");
        if let (Value::Object(map), Some((results, _))) = (&mut doc, self.restart) {
            let rows: Vec<Value> = results.iter().map(|(n, r)| outcome_json(n, r)).collect();
            map.insert("restart".into(), json!(rows));
        }
        sink::json_text(&doc)
    }

    fn text(&self, style: Style, shown: &mut Shown) {
        let e = self.edited;
        let name = &e.service;
        shown.warnings(
            &e.warnings
                .iter()
                .map(|w| format!("{name}: {w}"))
                .collect::<Vec<_>>(),
        );
        for p in &e.problems {
            shown.out(&format!("{name}: {} {p}\n", style.red("problem:")));
        }
        let file = e.file.display();
        match e.result {
            EditResult::Installed => {
                let new = if e.created {
                    " (new: it replaces the package's fragment)"
                } else {
                    ""
                };
                shown.out(&format!(
                    "{name}: {} {file}{new}\n",
                    style.green("checked and installed")
                ));
                match self.restart {
                    Some((results, warnings)) => {
                        for (service, result) in results {
                            match result {
                                Ok(outcome) => shown.out(&outcome_line(service, outcome, style)),
                                Err(err) => shown.error(err),
                            };
                        }
                        shown.warnings(warnings);
                    }
                    None => {
                        shown.out(&format!("apply it with: servicectl restart {name}\n"));
                    }
                }
            }
            EditResult::Unchanged => {
                shown.out(&format!("{name}: {file} unchanged\n"));
            }
            EditResult::Discarded => {
                shown.out(&format!(
                    "{name}: dropped the kept edit; {file} is as it was\n"
                ));
            }
            EditResult::NothingToDiscard => {
                shown.out(&format!("{name}: no kept edit to drop\n"));
            }
            EditResult::Rejected | EditResult::Conflict | EditResult::EditorFailed => {}
        }
        if let Some(error) = self.failure() {
            shown.error(&error);
        }
    }

    fn json_notes(&self, shown: &mut Shown) {
        if let Some((_, warnings)) = self.restart {
            shown.warnings(warnings);
        }
        if let Some(error) = self.failure() {
            shown.error(&error);
        }
    }
}
