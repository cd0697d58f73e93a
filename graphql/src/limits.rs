//! The depth limit, checked right after parsing, before validation and any resolver. It
//! counts the fields along the deepest path through the operation (fragments followed),
//! leaving out introspection (`__schema`, `__type`): a standard client's introspection query
//! is 13 levels deep and must still work under a limit of 12 on data.

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{
    ExecutableDocument, FragmentDefinition, Selection, SelectionSet,
};
use async_graphql::{Name, Positioned, ServerError, ServerResult, Variables};
use std::collections::HashMap;
use std::sync::Arc;

/// `[graphql] max_depth` as an extension.
pub struct DepthLimit(pub usize);

impl ExtensionFactory for DepthLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(DepthCheck(self.0))
    }
}

struct DepthCheck(usize);

#[async_trait::async_trait]
impl Extension for DepthCheck {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        let deepest = doc
            .operations
            .iter()
            .map(|(_, op)| depth(&op.node.selection_set.node, &doc.fragments, &mut Vec::new()))
            .max()
            .unwrap_or(0);
        if deepest > self.0 {
            let mut err = ServerError::new(
                format!(
                    "the query is nested {deepest} levels deep, deeper than {} levels; ask for less at once",
                    self.0
                ),
                None,
            );
            let ext = err.extensions.get_or_insert_with(Default::default);
            ext.set("code", "graphql.too_deep");
            ext.set("status", 400);
            return Err(err);
        }
        Ok(doc)
    }
}

/// Fields along the deepest path below `set`; `open` holds the fragments being expanded (a
/// cycle, refused later by validation, counts as nothing here).
fn depth(
    set: &SelectionSet,
    fragments: &HashMap<Name, Positioned<FragmentDefinition>>,
    open: &mut Vec<Name>,
) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(f) if f.node.name.node.starts_with("__") => 0,
            Selection::Field(f) => 1 + depth(&f.node.selection_set.node, fragments, open),
            Selection::InlineFragment(i) => depth(&i.node.selection_set.node, fragments, open),
            Selection::FragmentSpread(s) => {
                let name = &s.node.fragment_name.node;
                match fragments.get(name) {
                    Some(def) if !open.contains(name) => {
                        open.push(name.clone());
                        let d = depth(&def.node.selection_set.node, fragments, open);
                        open.pop();
                        d
                    }
                    _ => 0,
                }
            }
        })
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_of(query: &str) -> usize {
        let doc = async_graphql::parser::parse_query(query).expect("parses");
        doc.operations
            .iter()
            .map(|(_, op)| depth(&op.node.selection_set.node, &doc.fragments, &mut Vec::new()))
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn depth_counts_fields_through_fragments_but_not_introspection() {
        assert_eq!(depth_of("{ me { name } }"), 2);
        assert_eq!(depth_of("{ a { b { c } } d }"), 3);
        assert_eq!(
            depth_of("query { a { ...F } } fragment F on T { b { c { d } } }"),
            4
        );
        assert_eq!(depth_of("{ a { ... on T { b } } }"), 2);
        assert_eq!(
            depth_of("{ __schema { types { fields { type { ofType { ofType { name } } } } } } }"),
            0
        );
        // A cycle does not loop.
        assert_eq!(depth_of("{ a { ...F } } fragment F on T { b { ...F } }"), 2);
    }
}
