//! AlimTalk templates: the codes the simulated channel has registered, their
//! review status and their bodies with `#{key}` placeholders.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// A template's review status (NHN's `TSC0x` codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TemplateStatus {
    /// TSC01: review requested.
    #[serde(rename = "TSC01")]
    Requested,
    /// TSC02: under review.
    #[serde(rename = "TSC02")]
    Reviewing,
    /// TSC03: approved; the only status that can be sent.
    #[serde(rename = "TSC03")]
    Approved,
    /// TSC04: rejected.
    #[serde(rename = "TSC04")]
    Rejected,
}

impl TemplateStatus {
    /// `TSC01` … `TSC04`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Requested => "TSC01",
            Self::Reviewing => "TSC02",
            Self::Approved => "TSC03",
            Self::Rejected => "TSC04",
        }
    }
}

fn approved() -> TemplateStatus {
    TemplateStatus::Approved
}

/// A registered AlimTalk template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KakaoTemplate {
    /// The template code (at most 20 characters).
    pub code: String,
    /// The body, with `#{key}` placeholders.
    pub content: String,
    /// Review status (default approved).
    #[serde(default = "approved")]
    pub status: TemplateStatus,
}

impl KakaoTemplate {
    /// An approved template.
    pub fn approved(code: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            content: content.into(),
            status: TemplateStatus::Approved,
        }
    }

    /// The placeholder names, in order of first appearance.
    pub fn placeholders(&self) -> Vec<String> {
        let mut seen = BTreeSet::new();
        let mut names = Vec::new();
        let mut rest = self.content.as_str();
        while let Some(start) = rest.find("#{") {
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                break;
            };
            let name = &after[..end];
            if !name.is_empty() && seen.insert(name.to_owned()) {
                names.push(name.to_owned());
            }
            rest = &after[end + 1..];
        }
        names
    }

    /// The body with every placeholder replaced, or the names that have no
    /// value.
    pub fn render(&self, parameters: &BTreeMap<String, String>) -> Result<String, Vec<String>> {
        let missing: Vec<String> = self
            .placeholders()
            .into_iter()
            .filter(|name| !parameters.contains_key(name))
            .collect();
        if !missing.is_empty() {
            return Err(missing);
        }
        let mut text = self.content.clone();
        for name in self.placeholders() {
            if let Some(value) = parameters.get(&name) {
                text = text.replace(&format!("#{{{name}}}"), value);
            }
        }
        Ok(text)
    }
}

/// The registered templates, by code.
#[derive(Debug, Default)]
pub(crate) struct TemplateRegistry {
    templates: BTreeMap<String, KakaoTemplate>,
}

impl TemplateRegistry {
    /// The defaults: `ORDER_SHIPPED` (`#{name}`, `#{orderNo}`),
    /// `POINTS_BALANCE` (`#{name}`, `#{points}`), `AUTH_CODE` (`#{code}`,
    /// with the authentication word 인증) and `PROMO_REVIEW` (`#{name}`,
    /// still under review).
    pub(crate) fn with_defaults() -> Self {
        let mut registry = Self::default();
        for template in default_templates() {
            registry.insert(template);
        }
        registry
    }

    pub(crate) fn insert(&mut self, template: KakaoTemplate) {
        self.templates.insert(template.code.clone(), template);
    }

    pub(crate) fn get(&self, code: &str) -> Option<&KakaoTemplate> {
        self.templates.get(code)
    }

    pub(crate) fn all(&self) -> Vec<KakaoTemplate> {
        self.templates.values().cloned().collect()
    }
}

/// The templates every simulator starts with.
pub fn default_templates() -> Vec<KakaoTemplate> {
    vec![
        KakaoTemplate::approved(
            "ORDER_SHIPPED",
            "#{name}님, 주문하신 상품이 발송되었습니다.\n주문번호: #{orderNo}",
        ),
        KakaoTemplate::approved("POINTS_BALANCE", "#{name}님의 적립금은 #{points}점입니다."),
        KakaoTemplate::approved(
            "AUTH_CODE",
            "[Switchboard] 인증번호는 #{code}입니다. 타인에게 알려주지 마세요.",
        ),
        KakaoTemplate {
            code: "PROMO_REVIEW".into(),
            content: "#{name}님을 위한 소식".into(),
            status: TemplateStatus::Reviewing,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn placeholders_and_rendering() {
        let template = KakaoTemplate::approved("T", "#{name}님 #{orderNo} #{name} #{} #{open");
        assert_eq!(template.placeholders(), vec!["name", "orderNo"]);
        assert_eq!(
            template.render(&params(&[
                ("name", "민지"),
                ("orderNo", "A-1"),
                ("extra", "x")
            ])),
            Ok("민지님 A-1 민지 #{} #{open".to_owned())
        );
        assert_eq!(
            template.render(&params(&[("name", "민지")])),
            Err(vec!["orderNo".to_owned()])
        );
    }

    #[test]
    fn defaults_and_status_codes() {
        let registry = TemplateRegistry::with_defaults();
        assert_eq!(
            registry
                .get("ORDER_SHIPPED")
                .map(KakaoTemplate::placeholders),
            Some(vec!["name".to_owned(), "orderNo".to_owned()])
        );
        assert_eq!(
            registry.get("PROMO_REVIEW").map(|t| t.status.code()),
            Some("TSC02")
        );
        assert!(registry.get("NOPE").is_none());
        let parsed: KakaoTemplate =
            serde_json::from_str(r#"{"code":"X","content":"hi"}"#).expect("parses");
        assert_eq!(parsed.status, TemplateStatus::Approved);
    }
}
