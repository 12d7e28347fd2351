//! The scrape targets page: each `ingest.scrape` target's last scrape, how
//! long it took, what it gave, and why it failed (docs/ingest.md).

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};

use super::{Nav, PageContext, format};
use crate::duration::HumanDuration;
use crate::service::{Service, TargetStatus};

/// `GET /scrape`.
pub(super) async fn page(State(service): State<Arc<Service>>) -> Response {
    PageContext::new(service)
        .respond(move |context| {
            let targets = context.service.scrape_statuses();
            Ok(context.render("Scrape targets", Nav::Scrape, None, content(&targets)))
        })
        .await
}

fn content(targets: &[TargetStatus]) -> Markup {
    let down = targets.iter().filter(|target| !target.up).count();
    html! {
        p.note {
            "The " code { "/metrics" } " pages of " code { "ingest.scrape" } ", each read on its "
            "own schedule; in a cluster, by the node that leads. A target is up once its last "
            "scrape was read and stored."
        }
        section {
            h2 { "Targets " span.count { (targets.len()) } @if down > 0 { " " span.count.firing { (down) " down" } } }
            @if targets.is_empty() {
                p.empty { "No target: list them in " code { "ingest.scrape" } "." }
            } @else {
                div.scroll {
                    table.cards #targets {
                        thead { tr {
                            th { "Host" } th { "URL" } th { "State" } th { "Every" }
                            th { "Last scrape" } th { "Took" } th { "Points" } th { "Samples" }
                            th { "Error" }
                        } }
                        tbody {
                            @for target in targets {
                                tr {
                                    td data-label="Host" { (target.host) }
                                    td data-label="URL" { code { (target.url) } }
                                    td data-label="State" {
                                        @if target.up { "up" }
                                        @else if target.last_scrape.is_none() { "not scraped yet" }
                                        @else { strong { "down" } " (" (target.failures) " in a row)" }
                                    }
                                    td data-label="Every" { (HumanDuration(target.interval)) }
                                    td.time data-label="Last scrape" {
                                        @match target.last_scrape {
                                            Some(at) => { (format::time(at)) " UTC" }
                                            None => { "never" }
                                        }
                                    }
                                    td data-label="Took" {
                                        @if let Some(took) = target.duration_ms { (took) " ms" }
                                    }
                                    td data-label="Points" { (target.points) }
                                    td data-label="Samples" { (target.samples) }
                                    td data-label="Error" {
                                        @if let Some(error) = &target.error { (error) }
                                        @if let Some(refusals) = &target.refusals {
                                            (target.refused) " refused: " (refusals)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
