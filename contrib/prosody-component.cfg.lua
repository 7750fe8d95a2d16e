-- stox-gateway as an external component (XEP-0114) of Prosody 0.12.
--
-- Put this file in /etc/prosody/conf.d/ (Debian's prosody.cfg.lua ends with
-- Include "conf.d/*.cfg.lua"), replace the names and the secret, then
-- `prosodyctl check config` and restart Prosody. The gateway's side is
-- [xmpp] in its gateway.toml:
--
--   [xmpp]
--   server = "127.0.0.1:5347"        # component_interfaces : component_ports
--   component = "sip.example.com"    # the Component name below
--   secret = "change-me"             # its component_secret
--   domains = ["example.com"]        # the VirtualHost(s) whose users call and are called
--
-- The secret only authenticates the handshake (a SHA-1 of stream id and
-- secret): keep the listener on loopback or a private network. Generate
-- one with `openssl rand -hex 24`.

-- Global options (an included file starts in the global section, so they
-- go before its first VirtualHost/Component). These are Prosody's defaults,
-- written out to show where the gateway's `server` comes from:
component_ports = { 5347 }
component_interfaces = { "127.0.0.1" }

-- The users' domain. mod_ping must be on for it (Debian's default config
-- enables "ping"): the gateway pings the first of its `domains` as keepalive.
-- VirtualHost "example.com"

Component "sip.example.com"
    component_secret = "change-me"
    -- Nothing else is needed: no modules are loaded for an external
    -- component. While the gateway is not connected, Prosody answers stanzas
    -- to sip.example.com and its JIDs with an error itself.
