//! The registry of approved message templates.
//!
//! Meta only delivers templates that were approved for the WhatsApp Business
//! Account in the requested language, and checks that the request supplies
//! exactly as many parameters as the template has placeholders. The
//! simulator keeps a small registry with the same rules; tests can add more
//! templates through [`crate::WhatsAppControl::add_template`] or
//! `POST /_sim/whatsapp/templates`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Meta's template categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TemplateCategory {
    /// Promotions and offers; blocked for users who stopped marketing
    /// messages (error 131050).
    Marketing,
    /// Transactional updates (orders, accounts).
    Utility,
    /// One-time passcodes.
    Authentication,
}

impl TemplateCategory {
    /// The lowercase name used in webhook `pricing.category`.
    pub fn as_pricing_category(self) -> &'static str {
        match self {
            Self::Marketing => "marketing",
            Self::Utility => "utility",
            Self::Authentication => "authentication",
        }
    }
}

/// One approved template in one language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    /// Template name, e.g. `order_update`.
    pub name: String,
    /// Language code, e.g. `en_US`.
    pub language: String,
    /// Category.
    pub category: TemplateCategory,
    /// Number of `{{n}}` placeholders in the body.
    pub body_params: usize,
    /// Number of placeholders in the header (usually 0).
    #[serde(default)]
    pub header_params: usize,
    /// Body text with `{{1}}`, `{{2}}`... placeholders, used to render the
    /// recorded text of accepted messages.
    pub body_text: String,
}

impl Template {
    /// The body with the placeholders replaced by `params` (in order).
    pub fn render(&self, params: &[String]) -> String {
        let mut text = self.body_text.clone();
        for (i, value) in params.iter().enumerate() {
            text = text.replace(&format!("{{{{{}}}}}", i + 1), value);
        }
        text
    }

    /// The simulator's default templates: `winback_offer` (marketing, 1 body
    /// parameter), `order_update` (utility, 2) and `loyalty_points`
    /// (marketing, 2) and `points_balance` (utility, 2), all in `en_US`.
    pub fn defaults() -> Vec<Template> {
        vec![
            Template {
                name: "winback_offer".into(),
                language: "en_US".into(),
                category: TemplateCategory::Marketing,
                body_params: 1,
                header_params: 0,
                body_text:
                    "Hi {{1}}, we miss you! Come back this week and get 20% off your next order."
                        .into(),
            },
            Template {
                name: "order_update".into(),
                language: "en_US".into(),
                category: TemplateCategory::Utility,
                body_params: 2,
                header_params: 0,
                body_text: "Hi {{1}}, your order {{2}} has shipped.".into(),
            },
            Template {
                name: "loyalty_points".into(),
                language: "en_US".into(),
                category: TemplateCategory::Marketing,
                body_params: 2,
                header_params: 0,
                body_text: "Hi {{1}}, you have {{2}} loyalty points waiting for you.".into(),
            },
            Template {
                name: "points_balance".into(),
                language: "en_US".into(),
                category: TemplateCategory::Utility,
                body_params: 2,
                header_params: 0,
                body_text: "Hi {{1}}, your loyalty balance is {{2}} points.".into(),
            },
        ]
    }
}

/// Approved templates keyed by (name, language).
#[derive(Debug, Clone, Default)]
pub struct TemplateRegistry {
    templates: BTreeMap<(String, String), Template>,
}

impl TemplateRegistry {
    /// A registry holding [`Template::defaults`].
    pub fn with_defaults() -> Self {
        let mut registry = Self::default();
        for template in Template::defaults() {
            registry.insert(template);
        }
        registry
    }

    /// Adds or replaces a template.
    pub fn insert(&mut self, template: Template) {
        self.templates
            .insert((template.name.clone(), template.language.clone()), template);
    }

    /// Looks a template up by name and language code.
    pub fn get(&self, name: &str, language: &str) -> Option<&Template> {
        self.templates.get(&(name.to_owned(), language.to_owned()))
    }

    /// Every template, ordered by name then language.
    pub fn all(&self) -> Vec<Template> {
        self.templates.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_render() {
        let registry = TemplateRegistry::with_defaults();
        let t = registry.get("order_update", "en_US").expect("default");
        assert_eq!(t.body_params, 2);
        assert_eq!(
            t.render(&["Jane".into(), "#1234".into()]),
            "Hi Jane, your order #1234 has shipped."
        );
        assert!(registry.get("order_update", "de_DE").is_none());
        assert_eq!(registry.all().len(), 4);
        assert_eq!(
            registry
                .get("points_balance", "en_US")
                .expect("default")
                .render(&["Jane".into(), "120".into()]),
            "Hi Jane, your loyalty balance is 120 points."
        );
    }
}
