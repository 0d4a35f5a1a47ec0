//! `bulwark admin user|key|group|policy …`: identities over the admin API.

use clap::Subcommand;
use serde_json::Value;

use crate::admin::Target;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user (no access keys yet: `bulwark admin key create USER`).
    Create { name: String },
    /// List users with their keys, groups and policies.
    List,
    /// Show one user.
    Info { name: String },
    /// Delete a user and its access keys.
    Delete { name: String },
    /// Let a disabled user sign requests again.
    Enable { name: String },
    /// Stop a user's keys from signing anything, without deleting them.
    Disable { name: String },
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Create an access key for a user; the secret is shown only now.
    Create {
        user: String,
    },
    /// List access keys (never secrets).
    List {
        #[arg(long)]
        user: Option<String>,
    },
    Enable {
        access_key: String,
    },
    /// Revoke a key now (also its presigned URLs); it can be enabled again.
    Disable {
        access_key: String,
    },
    Delete {
        access_key: String,
    },
}

#[derive(Subcommand)]
pub enum GroupCommand {
    Create {
        name: String,
    },
    List,
    Delete {
        name: String,
    },
    /// Add a user to a group.
    Add {
        group: String,
        user: String,
    },
    /// Remove a user from a group.
    Remove {
        group: String,
        user: String,
    },
}

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Create or replace a managed policy from a JSON file (IAM policy language).
    Put {
        name: String,
        file: std::path::PathBuf,
    },
    /// Show a policy document and where it is attached.
    Get {
        name: String,
    },
    List,
    /// Delete a policy that is attached nowhere.
    Delete {
        name: String,
    },
    /// Attach a policy to a user or a group.
    Attach {
        name: String,
        #[arg(long, conflicts_with = "group", required_unless_present = "group")]
        user: Option<String>,
        #[arg(long)]
        group: Option<String>,
    },
    Detach {
        name: String,
        #[arg(long, conflicts_with = "group", required_unless_present = "group")]
        user: Option<String>,
        #[arg(long)]
        group: Option<String>,
    },
}

fn enc(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn print(value: &Value, json: bool, human: impl FnOnce(&Value)) {
    if json {
        println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
    } else {
        human(value);
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

fn print_user(user: &Value) {
    let names = |v: &Value| {
        let list: Vec<String> = v.as_array().into_iter().flatten().map(text).collect();
        if list.is_empty() { "-".to_owned() } else { list.join(",") }
    };
    let keys: Vec<String> = user["access_keys"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|k| {
            let state = if k["enabled"].as_bool() == Some(true) { "" } else { " (disabled)" };
            format!("{}{state}", text(&k["access_key"]))
        })
        .collect();
    println!(
        "{:<20} {:<9} groups={} policies={} keys={}",
        text(&user["name"]),
        if user["enabled"].as_bool() == Some(true) { "enabled" } else { "DISABLED" },
        names(&user["groups"]),
        names(&user["policies"]),
        if keys.is_empty() { "-".to_owned() } else { keys.join(",") }
    );
}

fn ok(message: String) -> impl FnOnce(&Value) {
    move |_| println!("{message}")
}

pub async fn user(target: &Target, command: UserCommand, json: bool) -> Result<(), String> {
    match command {
        UserCommand::Create { name } => {
            let v = target
                .call_with_body("POST", &format!("bulwark-admin=user-create&user={}", enc(&name)), vec![])
                .await?;
            print(&v, json, |v| println!("Created user {} ({})", text(&v["name"]), text(&v["arn"])));
        }
        UserCommand::List => {
            let v = target.call_with_body("GET", "bulwark-admin=user-list", vec![]).await?;
            print(&v, json, |v| v.as_array().into_iter().flatten().for_each(print_user));
        }
        UserCommand::Info { name } => {
            let v =
                target.call_with_body("GET", &format!("bulwark-admin=user-info&user={}", enc(&name)), vec![]).await?;
            print(&v, json, print_user);
        }
        UserCommand::Delete { name } => {
            let v = target
                .call_with_body("POST", &format!("bulwark-admin=user-delete&user={}", enc(&name)), vec![])
                .await?;
            print(&v, json, ok(format!("Deleted user {name} and its access keys")));
        }
        UserCommand::Enable { name } => {
            let v = target
                .call_with_body("POST", &format!("bulwark-admin=user-enable&user={}", enc(&name)), vec![])
                .await?;
            print(&v, json, ok(format!("Enabled user {name}")));
        }
        UserCommand::Disable { name } => {
            let v = target
                .call_with_body("POST", &format!("bulwark-admin=user-disable&user={}", enc(&name)), vec![])
                .await?;
            print(&v, json, ok(format!("Disabled user {name}")));
        }
    }
    Ok(())
}

pub async fn key(target: &Target, command: KeyCommand, json: bool) -> Result<(), String> {
    match command {
        KeyCommand::Create { user } => {
            let v =
                target.call_with_body("POST", &format!("bulwark-admin=key-create&user={}", enc(&user)), vec![]).await?;
            print(&v, json, |v| {
                println!("Access key for {}:", text(&v["user"]));
                println!("  AWS_ACCESS_KEY_ID={}", text(&v["access_key"]));
                println!("  AWS_SECRET_ACCESS_KEY={}", text(&v["secret_key"]));
                println!("The secret is shown only now; the server keeps it sealed and will not show it again.");
            });
        }
        KeyCommand::List { user } => {
            let query = match &user {
                Some(u) => format!("bulwark-admin=key-list&user={}", enc(u)),
                None => "bulwark-admin=key-list".to_owned(),
            };
            let v = target.call_with_body("GET", &query, vec![]).await?;
            print(&v, json, |v| {
                for k in v.as_array().into_iter().flatten() {
                    let state = if k["enabled"].as_bool() == Some(true) { "enabled" } else { "DISABLED" };
                    println!("{:<22} {:<9} {}", text(&k["access_key"]), state, text(&k["user"]));
                }
            });
        }
        KeyCommand::Enable { access_key } => {
            let v = target
                .call_with_body("POST", &format!("bulwark-admin=key-enable&key={}", enc(&access_key)), vec![])
                .await?;
            print(&v, json, ok(format!("Enabled {access_key}")));
        }
        KeyCommand::Disable { access_key } => {
            let v = target
                .call_with_body("POST", &format!("bulwark-admin=key-disable&key={}", enc(&access_key)), vec![])
                .await?;
            print(&v, json, ok(format!("Disabled {access_key}; requests and presigned URLs signed with it now fail")));
        }
        KeyCommand::Delete { access_key } => {
            let v = target
                .call_with_body("POST", &format!("bulwark-admin=key-delete&key={}", enc(&access_key)), vec![])
                .await?;
            print(&v, json, ok(format!("Deleted {access_key}")));
        }
    }
    Ok(())
}

pub async fn group(target: &Target, command: GroupCommand, json: bool) -> Result<(), String> {
    let (method, query, message) = match command {
        GroupCommand::List => {
            let v = target.call_with_body("GET", "bulwark-admin=group-list", vec![]).await?;
            print(&v, json, |v| {
                for g in v.as_array().into_iter().flatten() {
                    let list = |v: &Value| v.as_array().into_iter().flatten().map(text).collect::<Vec<_>>().join(",");
                    println!(
                        "{:<20} members={} policies={}",
                        text(&g["name"]),
                        list(&g["members"]),
                        list(&g["policies"])
                    );
                }
            });
            return Ok(());
        }
        GroupCommand::Create { name } => {
            ("POST", format!("bulwark-admin=group-create&group={}", enc(&name)), format!("Created group {name}"))
        }
        GroupCommand::Delete { name } => {
            ("POST", format!("bulwark-admin=group-delete&group={}", enc(&name)), format!("Deleted group {name}"))
        }
        GroupCommand::Add { group, user } => (
            "POST",
            format!("bulwark-admin=group-add&group={}&user={}", enc(&group), enc(&user)),
            format!("Added {user} to {group}"),
        ),
        GroupCommand::Remove { group, user } => (
            "POST",
            format!("bulwark-admin=group-remove&group={}&user={}", enc(&group), enc(&user)),
            format!("Removed {user} from {group}"),
        ),
    };
    let v = target.call_with_body(method, &query, vec![]).await?;
    print(&v, json, ok(message));
    Ok(())
}

fn attachment(user: Option<String>, group: Option<String>) -> Result<(String, String), String> {
    match (user, group) {
        (Some(u), None) => Ok((format!("user={}", enc(&u)), format!("user {u}"))),
        (None, Some(g)) => Ok((format!("group={}", enc(&g)), format!("group {g}"))),
        _ => Err("name exactly one of --user or --group".to_owned()),
    }
}

pub async fn policy(target: &Target, command: PolicyCommand, json: bool) -> Result<(), String> {
    match command {
        PolicyCommand::Put { name, file } => {
            let body = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let v =
                target.call_with_body("POST", &format!("bulwark-admin=policy-put&policy={}", enc(&name)), body).await?;
            print(&v, json, ok(format!("Stored policy {name}")));
        }
        PolicyCommand::Get { name } => {
            let v = target
                .call_with_body("GET", &format!("bulwark-admin=policy-get&policy={}", enc(&name)), vec![])
                .await?;
            print(&v, json, |v| {
                println!("Policy {} (attached to: {})", text(&v["name"]), v["attached_to"]);
                println!("{}", serde_json::to_string_pretty(&v["document"]).unwrap_or_default());
            });
        }
        PolicyCommand::List => {
            let v = target.call_with_body("GET", "bulwark-admin=policy-list", vec![]).await?;
            print(&v, json, |v| {
                for p in v.as_array().into_iter().flatten() {
                    println!("{:<24} attached to {}", text(&p["name"]), p["attached_to"]);
                }
            });
        }
        PolicyCommand::Delete { name } => {
            let v = target
                .call_with_body("POST", &format!("bulwark-admin=policy-delete&policy={}", enc(&name)), vec![])
                .await?;
            print(&v, json, ok(format!("Deleted policy {name}")));
        }
        PolicyCommand::Attach { name, user, group } => {
            let (param, label) = attachment(user, group)?;
            let query = format!("bulwark-admin=policy-attach&policy={}&{param}", enc(&name));
            let v = target.call_with_body("POST", &query, vec![]).await?;
            print(&v, json, ok(format!("Attached {name} to {label}")));
        }
        PolicyCommand::Detach { name, user, group } => {
            let (param, label) = attachment(user, group)?;
            let query = format!("bulwark-admin=policy-detach&policy={}&{param}", enc(&name));
            let v = target.call_with_body("POST", &query, vec![]).await?;
            print(&v, json, ok(format!("Detached {name} from {label}")));
        }
    }
    Ok(())
}
