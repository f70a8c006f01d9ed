//! service_type=inetd: protocol, address, port, command, handlers at once.

use super::table::{self, Count1};
use super::{InetdSettings, PortSetting, Protocol, Reader};
use crate::config::envars::{self, VarType};
use std::net::IpAddr;

pub(super) fn read(r: &mut Reader) -> Option<InetdSettings> {
    let protocol = match r.value("service_protocol") {
        None | Some("tcp") => Some(Protocol::Tcp),
        Some("udp") => Some(Protocol::Udp),
        Some(_) => {
            r.bad("service_protocol", table::row("service_protocol").rule);
            None
        }
    };
    let bind = match r.value("service_bind") {
        None => Some(
            table::row("service_bind")
                .default
                .parse()
                .expect("the default address is valid"),
        ),
        Some(v) => match v
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            Ok(ip) => Some(ip),
            Err(_) => {
                r.bad("service_bind", table::row("service_bind").rule);
                None
            }
        },
    };
    let port = match r.value("service_port") {
        None => {
            r.missing("service_type=inetd needs service_port (a port number, or the name of a typed port variable)".to_string());
            None
        }
        Some(v) if v.bytes().all(|b| b.is_ascii_digit()) => match v.parse::<u16>() {
            Ok(n) if n > 0 => Some(PortSetting::Number(n)),
            _ => {
                r.bad("service_port", "must be a port from 1 to 65535");
                None
            }
        },
        Some(v) => {
            let is_port_var = envars::specs(r.config)
                .iter()
                .any(|s| s.name == v && s.effective_type() == Some(VarType::Port));
            if is_port_var {
                Some(PortSetting::Variable(v.to_string()))
            } else {
                r.bad(
                    "service_port",
                    "must be a port from 1 to 65535, or the name of a port variable listed in service_required_envars or service_optional_envars",
                );
                None
            }
        }
    };
    let command = match r
        .config
        .get("service_inetd_command")
        .filter(|c| !c.trim().is_empty())
    {
        None => {
            r.missing(
                "service_type=inetd needs service_inetd_command (the program to run per connection, with its arguments)".to_string(),
            );
            None
        }
        Some(text) => r.words("service_inetd_command", text),
    };
    let max_handlers = r.get::<Count1>("service_inetd_max");
    Some(InetdSettings {
        protocol: protocol?,
        bind: bind?,
        port: port?,
        command: command?,
        max_handlers,
    })
}
