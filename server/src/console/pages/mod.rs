//! One module per console page: its handlers and its template's typed context.

pub mod account;
pub mod admin;
pub mod attachments;
pub mod export;
pub mod finding;
pub mod findings;
pub mod history;
pub mod login;
pub mod records;
pub mod reports;
pub mod resolve;
pub mod tasks;
pub mod township;
