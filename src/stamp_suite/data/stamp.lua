-- Wireshark dissector for STAMP, the Simple Two-way Active Measurement Protocol:
-- RFC 8762 (base packets), RFC 8972 (SSID and TLVs), RFC 9503 (Segment Routing TLVs) and
-- RFC 9534 (Micro-session ID TLV).  Part of stamp-suite; docs/wireshark.md says what it shows.
--
-- Load it with `tshark -X lua_script:stamp.lua` (or `stamp-suite --wireshark-dissector`
-- for the path), or copy it into Wireshark's personal Lua plugin folder.
--
-- Written against the Lua API of Wireshark 4.0 (tested with tshark 4.0.17).  Bits are
-- taken with arithmetic and ProtoField masks, not a bit library, so the code reads the same
-- under Lua 5.1 to 5.4.  Every read is bounded by the packet length: a short or hostile
-- packet gets expert info, never a Lua error.

local stamp = Proto("stamp", "Simple Two-way Active Measurement Protocol")

local OPEN_BASE = 44          -- RFC 8762 §4.2.1, §4.3.1
local AUTH_BASE = 112         -- RFC 8762 §4.2.2, §4.3.2
local MIN_OPEN_REPLY = 38     -- what a TWAMP-Light reflector returns at least (up to the SS Error Estimate)
local TLV_HEADER = 4          -- Flags(1) Type(1) Length(2), Length counting the Value only (RFC 8972 §4)
local NTP_UNIX_OFFSET = 2208988800
local TWO31, TWO32 = 2147483648, 4294967296

------------------------------------------------------------------------------------------
-- Names from the RFCs and their IANA registries
------------------------------------------------------------------------------------------

local TLV_NAMES = {
    [1] = "Extra Padding", [2] = "Location", [3] = "Timestamp Information",
    [4] = "Class of Service", [5] = "Direct Measurement", [6] = "Access Report",
    [7] = "Follow-Up Telemetry", [8] = "HMAC",                        -- RFC 8972 §5.1
    [9] = "Destination Node Address", [10] = "Return Path",           -- RFC 9503 §7
    [11] = "Micro-session ID",                                        -- RFC 9534 §5
}

-- The STAMP TLV Type ranges (RFC 8972 §5.1); the sub-TLV registries use the same ones.
local function registry_name(names, value)
    if names[value] then return names[value] end
    if value == 0 or value == 255 then return "Reserved" end
    if value >= 252 then return "Private Use" end
    if value >= 240 then return "Experimental Use" end
    return "Unassigned"
end

local function value_string(names)
    local vs = {}
    for v = 0, 255 do vs[v] = registry_name(names, v) end
    return vs
end

local LOCATION_SUB_NAMES = {                                          -- RFC 8972 §5.3
    [1] = "Source MAC Address", [2] = "Source EUI-48 Address", [3] = "Source EUI-64 Address",
    [4] = "Destination IP Address", [5] = "Destination IPv4 Address", [6] = "Destination IPv6 Address",
    [7] = "Source IP Address", [8] = "Source IPv4 Address", [9] = "Source IPv6 Address",
}
local LOCATION_SUB_LENGTH = { [1] = 8, [2] = 8, [3] = 8, [4] = 16, [5] = 16, [6] = 16, [7] = 16, [8] = 16, [9] = 16 }

local RETURN_PATH_SUB_NAMES = {                                       -- RFC 9503 §7
    [1] = "Return Path Control Code", [2] = "Return Address",
    [3] = "SR-MPLS Label Stack of the Return Path", [4] = "SRv6 Segment List of the Return Path",
}

local SYNC_SOURCES = value_string({                                   -- RFC 8972 §5.4
    [1] = "NTP", [2] = "PTP", [3] = "SSU/BITS", [4] = "GPS/GLONASS/LORAN-C/BDS/Galileo", [5] = "Local free-running",
})
local TIMESTAMP_METHODS = value_string({                              -- RFC 8972 §5.5
    [1] = "HW Assist", [2] = "SW Local", [3] = "Control Plane",
})
local RETURN_CODES = value_string({ [1] = "Network available", [2] = "Network unavailable" })  -- RFC 8972 §5.6
local ACCESS_IDS = { [1] = "3GPP Network", [2] = "Non-3GPP Network" }                        -- RFC 8972 §4.6

------------------------------------------------------------------------------------------
-- Preferences
------------------------------------------------------------------------------------------

local AUTO, OPEN, AUTHENTICATED = 0, 1, 2
local SENDER, REFLECTOR = 1, 2

stamp.prefs.ports = Pref.range("UDP ports", "862",
    "UDP ports decoded as STAMP (862 is the RFC 8762 default); other ports are tried by a heuristic", 65535)
stamp.prefs.mode = Pref.enum("Mode", AUTO,
    "Open (44-octet base) or authenticated (112-octet base); auto looks at octets 4-15, MBZ in authenticated packets",
    { { 1, "auto", AUTO }, { 2, "open", OPEN }, { 3, "authenticated", AUTHENTICATED } }, false)
stamp.prefs.direction = Pref.enum("Direction", AUTO,
    "Session-Sender test packet or Session-Reflector reply; auto looks at the fields only a reflector fills",
    { { 1, "auto", AUTO }, { 2, "sender", SENDER }, { 3, "reflector", REFLECTOR } }, false)
stamp.prefs.tai_offset = Pref.uint("TAI - UTC (seconds)", 37,
    "PTP timestamps count TAI seconds (RFC 8877 §4.3); they are shown in UTC, this many seconds earlier")

------------------------------------------------------------------------------------------
-- Fields
------------------------------------------------------------------------------------------

local f = {}

f.direction = ProtoField.uint8("stamp.direction", "Packet", base.DEC,
    { [SENDER] = "Session-Sender test packet", [REFLECTOR] = "Session-Reflector reply" })
f.authenticated = ProtoField.bool("stamp.authenticated", "Authenticated mode")
f.seq = ProtoField.uint32("stamp.seq", "Sequence Number")
f.ssid = ProtoField.uint16("stamp.ssid", "SSID (STAMP Session Identifier)", base.HEX_DEC)
f.mbz = ProtoField.bytes("stamp.mbz", "MBZ")
f.hmac = ProtoField.bytes("stamp.hmac", "HMAC")
f.ss_seq = ProtoField.uint32("stamp.ss.seq", "Session-Sender Sequence Number")
f.ss_ttl = ProtoField.uint8("stamp.ss.ttl", "Ses-Sender TTL")

-- A timestamp: the absolute time, then its two 32-bit halves as sent (RFC 8877 §4.2.1, §4.3).
local function timestamp_fields(abbr, name)
    return {
        name = name,
        time = ProtoField.absolute_time(abbr, name, base.UTC),
        sec = ProtoField.uint32(abbr .. ".sec", "Seconds"),
        frac = ProtoField.uint32(abbr .. ".frac", "Fraction (2^-32 s)", base.HEX),
        nsec = ProtoField.uint32(abbr .. ".nsec", "Nanoseconds"),
    }
end
f.ts = timestamp_fields("stamp.ts", "Timestamp")
f.rx_ts = timestamp_fields("stamp.rx_ts", "Receive Timestamp")
f.ss_ts = timestamp_fields("stamp.ss.ts", "Session-Sender Timestamp")
f.fut_ts = timestamp_fields("stamp.tlv.fut.ts", "Follow-Up Timestamp")

-- The Error Estimate: S | Z | Scale(6) | Multiplier(8) (RFC 4656 §4.1.2, RFC 8186 §2.3).
local function error_estimate_fields(abbr, name)
    return {
        word = ProtoField.uint16(abbr, name, base.HEX),
        s = ProtoField.bool(abbr .. ".s", "S (synchronized to UTC)", 16, nil, 0x8000),
        z = ProtoField.uint16(abbr .. ".z", "Z (timestamp format)", base.DEC, { [0] = "NTP", [1] = "PTP" }, 0x4000),
        scale = ProtoField.uint16(abbr .. ".scale", "Scale", base.DEC, nil, 0x3F00),
        multiplier = ProtoField.uint16(abbr .. ".multiplier", "Multiplier", base.DEC, nil, 0x00FF),
        error = ProtoField.double(abbr .. ".error", "Error (seconds)"),
    }
end
f.ee = error_estimate_fields("stamp.ee", "Error Estimate")
f.ss_ee = error_estimate_fields("stamp.ss.ee", "Session-Sender Error Estimate")

-- TLV and sub-TLV headers: the same 4 octets and flags (RFC 8972 §4).
local function header_fields(abbr, type_names)
    return {
        flags = ProtoField.uint8(abbr .. ".flags", "Flags", base.HEX),
        u = ProtoField.bool(abbr .. ".flags.u", "U (Unrecognized)", 8, nil, 0x80),
        m = ProtoField.bool(abbr .. ".flags.m", "M (Malformed)", 8, nil, 0x40),
        i = ProtoField.bool(abbr .. ".flags.i", "I (Integrity)", 8, nil, 0x20),
        reserved = ProtoField.uint8(abbr .. ".flags.reserved", "Reserved", base.HEX, nil, 0x1F),
        type = ProtoField.uint8(abbr .. ".type", "Type", base.DEC, type_names),
        length = ProtoField.uint16(abbr .. ".length", "Length"),
        value = ProtoField.bytes(abbr .. ".value", "Value"),
    }
end
f.tlv = header_fields("stamp.tlv", value_string(TLV_NAMES))
f.sub = header_fields("stamp.subtlv")  -- each TLV has its own sub-TLV registry: the name is appended
f.enterprise = ProtoField.uint32("stamp.tlv.enterprise", "Private Enterprise Number")

f.padding = ProtoField.bytes("stamp.tlv.padding", "Extra Padding")
f.loc_dst_port = ProtoField.uint16("stamp.tlv.location.dst_port", "Destination Port")
f.loc_src_port = ProtoField.uint16("stamp.tlv.location.src_port", "Source Port")
f.loc_eui48 = ProtoField.ether("stamp.tlv.location.eui48", "Source EUI-48 Address")
f.loc_eui64 = ProtoField.eui64("stamp.tlv.location.eui64", "Source EUI-64 Address")
f.loc_dst_ipv4 = ProtoField.ipv4("stamp.tlv.location.dst_ipv4", "Destination IPv4 Address")
f.loc_dst_ipv6 = ProtoField.ipv6("stamp.tlv.location.dst_ipv6", "Destination IPv6 Address")
f.loc_src_ipv4 = ProtoField.ipv4("stamp.tlv.location.src_ipv4", "Source IPv4 Address")
f.loc_src_ipv6 = ProtoField.ipv6("stamp.tlv.location.src_ipv6", "Source IPv6 Address")
f.tsi_sync_in = ProtoField.uint8("stamp.tlv.tsinfo.sync_src_in", "Sync Src In", base.DEC, SYNC_SOURCES)
f.tsi_ts_in = ProtoField.uint8("stamp.tlv.tsinfo.timestamp_in", "Timestamp In", base.DEC, TIMESTAMP_METHODS)
f.tsi_sync_out = ProtoField.uint8("stamp.tlv.tsinfo.sync_src_out", "Sync Src Out", base.DEC, SYNC_SOURCES)
f.tsi_ts_out = ProtoField.uint8("stamp.tlv.tsinfo.timestamp_out", "Timestamp Out", base.DEC, TIMESTAMP_METHODS)
f.cos_dscp1 = ProtoField.uint32("stamp.tlv.cos.dscp1", "DSCP1", base.DEC, nil, 0xFC000000)
f.cos_dscp2 = ProtoField.uint32("stamp.tlv.cos.dscp2", "DSCP2", base.DEC, nil, 0x03F00000)
f.cos_ecn = ProtoField.uint32("stamp.tlv.cos.ecn", "ECN", base.DEC, nil, 0x000C0000)
f.cos_rp = ProtoField.uint32("stamp.tlv.cos.rp", "RP (Reverse Path)", base.DEC, nil, 0x00030000)
f.cos_reserved = ProtoField.uint32("stamp.tlv.cos.reserved", "Reserved", base.HEX, nil, 0x0000FFFF)
f.dm_s_txc = ProtoField.uint32("stamp.tlv.dm.s_txc", "S_TxC (Session-Sender transmit counter)")
f.dm_r_rxc = ProtoField.uint32("stamp.tlv.dm.r_rxc", "R_RxC (Session-Reflector receive counter)")
f.dm_r_txc = ProtoField.uint32("stamp.tlv.dm.r_txc", "R_TxC (Session-Reflector transmit counter)")
f.ar_id = ProtoField.uint8("stamp.tlv.ar.id", "ID (Access ID)", base.DEC, ACCESS_IDS, 0xF0)
f.ar_resv = ProtoField.uint8("stamp.tlv.ar.resv", "Resv", base.HEX, nil, 0x0F)
f.ar_return_code = ProtoField.uint8("stamp.tlv.ar.return_code", "Return Code", base.DEC, RETURN_CODES)
f.ar_reserved = ProtoField.uint16("stamp.tlv.ar.reserved", "Reserved", base.HEX)
f.fut_seq = ProtoField.uint32("stamp.tlv.fut.seq", "Sequence Number")
f.fut_mode = ProtoField.uint8("stamp.tlv.fut.mode", "Timestamp M(ode)", base.DEC, TIMESTAMP_METHODS)
f.fut_reserved = ProtoField.bytes("stamp.tlv.fut.reserved", "Reserved")
f.hmac_tlv = ProtoField.bytes("stamp.tlv.hmac", "HMAC")
f.dna_ipv4 = ProtoField.ipv4("stamp.tlv.dna.ipv4", "Destination Node IPv4 Address")
f.dna_ipv6 = ProtoField.ipv6("stamp.tlv.dna.ipv6", "Destination Node IPv6 Address")
f.rp_cc = ProtoField.uint32("stamp.tlv.rp.cc", "Control Code Flags", base.HEX)
f.rp_cc_reply = ProtoField.bool("stamp.tlv.rp.cc.reply_request", "Reply Request", 32,
    { "Reply Requested on the Same Link", "No Reply Requested" }, 0x00000001)
f.rp_ipv4 = ProtoField.ipv4("stamp.tlv.rp.ipv4", "Return IPv4 Address")
f.rp_ipv6 = ProtoField.ipv6("stamp.tlv.rp.ipv6", "Return IPv6 Address")
f.rp_lse = ProtoField.uint32("stamp.tlv.rp.mpls.lse", "Label Stack Entry", base.HEX)
f.rp_label = ProtoField.uint32("stamp.tlv.rp.mpls.label", "Label", base.DEC, nil, 0xFFFFF000)
f.rp_tc = ProtoField.uint32("stamp.tlv.rp.mpls.tc", "TC", base.DEC, nil, 0x00000E00)
f.rp_s = ProtoField.bool("stamp.tlv.rp.mpls.s", "S (Bottom of Stack)", 32, nil, 0x00000100)
f.rp_ttl = ProtoField.uint32("stamp.tlv.rp.mpls.ttl", "TTL", base.DEC, nil, 0x000000FF)
f.rp_sid = ProtoField.ipv6("stamp.tlv.rp.srv6.sid", "SID")
f.micro_sender = ProtoField.uint16("stamp.tlv.micro.sender_id", "Sender Micro-session ID")
f.micro_reflector = ProtoField.uint16("stamp.tlv.micro.reflector_id", "Reflector Micro-session ID")

-- Conversation analysis
f.request_in = ProtoField.framenum("stamp.request_in", "Request In", base.NONE, frametype.REQUEST)
f.response_in = ProtoField.framenum("stamp.response_in", "Response In", base.NONE, frametype.RESPONSE)
f.rtt = ProtoField.relative_time("stamp.rtt", "Round-trip time ((T4 - T1) - (T3 - T2), T4 = capture time)")

local function all_fields(t, out)
    for _, v in pairs(t) do
        if type(v) == "table" then all_fields(v, out) elseif type(v) ~= "string" then out[#out + 1] = v end
    end
    return out
end
stamp.fields = all_fields(f, {})

------------------------------------------------------------------------------------------
-- Expert info: what the RFCs forbid, and what a reflector reports in the TLV flags
------------------------------------------------------------------------------------------

local MALFORMED, PROTOCOL, RESPONSE = expert.group.MALFORMED, expert.group.PROTOCOL, expert.group.RESPONSE_CODE
local ERROR, WARN, NOTE = expert.severity.ERROR, expert.severity.WARN, expert.severity.NOTE
local e = {
    short = ProtoExpert.new("stamp.short", "Shorter than the STAMP base packet", MALFORMED, ERROR),
    overrun = ProtoExpert.new("stamp.tlv.overrun", "Length runs past the end of the packet", MALFORMED, ERROR),
    trailing = ProtoExpert.new("stamp.tlv.trailing", "Octets too few for a TLV header", MALFORMED, ERROR),
    bad_length = ProtoExpert.new("stamp.tlv.bad_length", "Length invalid for the Type", MALFORMED, ERROR),
    multiplier_zero = ProtoExpert.new("stamp.ee.multiplier_zero",
        "Error Estimate Multiplier is 0: MUST NOT be, the packet SHOULD be discarded (RFC 4656 §4.1.2)", PROTOCOL, WARN),
    ptp_nsec = ProtoExpert.new("stamp.ts.bad_nsec", "PTP nanoseconds above 999,999,999", PROTOCOL, WARN),
    hmac_not_last = ProtoExpert.new("stamp.tlv.hmac_not_last",
        "HMAC TLV followed by a TLV other than Extra Padding: an HMAC verification failure (RFC 8972 §4.8)",
        PROTOCOL, WARN),
    hmac_missing = ProtoExpert.new("stamp.tlv.hmac_missing",
        "Authenticated packet with TLVs but no HMAC TLV (RFC 8972 §4.8)", PROTOCOL, WARN),
    access_id = ProtoExpert.new("stamp.tlv.ar.bad_id",
        "Access ID neither 1 (3GPP) nor 2 (Non-3GPP): the TLV MUST be discarded (RFC 8972 §4.6)", PROTOCOL, WARN),
    rp_combination = ProtoExpert.new("stamp.tlv.rp.control_code_combined",
        "Control Code with a Return Address or a Segment List (RFC 9503 §4)", PROTOCOL, WARN),
    rp_repeated = ProtoExpert.new("stamp.tlv.rp.repeated",
        "More than one Return Path TLV: only the first counts (RFC 9503 §4)", PROTOCOL, WARN),
    dna_no_ssid = ProtoExpert.new("stamp.tlv.dna.no_ssid",
        "Destination Node Address TLV without an SSID (RFC 9503 §3)", PROTOCOL, WARN),
    unrecognized = ProtoExpert.new("stamp.tlv.unrecognized",
        "U flag: the Session-Reflector did not recognise or process this TLV", RESPONSE, NOTE),
    malformed = ProtoExpert.new("stamp.tlv.malformed",
        "M flag: the Session-Reflector found this TLV malformed", RESPONSE, WARN),
    integrity = ProtoExpert.new("stamp.tlv.integrity",
        "I flag: the TLVs failed HMAC verification at the Session-Reflector", RESPONSE, WARN),
}
stamp.experts = all_fields(e, {})

------------------------------------------------------------------------------------------
-- Reading the bytes
------------------------------------------------------------------------------------------

local frame_time = Field.new("frame.time")

-- Whether any octet of [at, at + n) that the packet holds is non-zero.
local function nonzero(tvb, at, n)
    for i = at, math.min(at + n, tvb:len()) - 1 do
        if tvb(i, 1):uint() ~= 0 then return true end
    end
    return false
end

local function parse_ports(text)
    local ranges = {}
    for part in string.gmatch(text, "[^,%s]+") do
        local lo, hi = string.match(part, "^(%d+)-(%d+)$")
        lo = tonumber(lo or part)
        if lo then ranges[#ranges + 1] = { lo, tonumber(hi) or lo } end
    end
    return ranges
end

local stamp_ports = parse_ports(stamp.prefs.ports)

local function is_stamp_port(port)
    for _, r in ipairs(stamp_ports) do
        if port >= r[1] and port <= r[2] then return true end
    end
    return false
end

-- Octets 4-15 hold the timestamp in an open packet and are MBZ in an authenticated one.
local function detect_authenticated(tvb, mode)
    if mode ~= AUTO then return mode == AUTHENTICATED end
    return tvb:len() >= AUTH_BASE and not nonzero(tvb, 4, 12)
end

-- A reflector always writes its Receive Timestamp (T2) and the Ses-Sender TTL (1..255)
-- where a Session-Sender packet has MBZ.  A packet too short to tell is placed by its
-- ports (the reflector's is the STAMP port), then by its length.
local function detect_reply(tvb, pinfo, authenticated, direction)
    if direction ~= AUTO then return direction == REFLECTOR end
    local t2, ttl = 16, 40
    if authenticated then t2, ttl = 32, 80 end
    if nonzero(tvb, t2, 8) or nonzero(tvb, ttl, 1) then return true end
    if tvb:len() >= (authenticated and AUTH_BASE or OPEN_BASE) then return false end
    local from_stamp, to_stamp = is_stamp_port(pinfo.src_port), is_stamp_port(pinfo.dst_port)
    if from_stamp ~= to_stamp then return from_stamp end
    return tvb:len() >= MIN_OPEN_REPLY
end

-- NTP: seconds since 1900 and a 2^-32 s fraction.  Seconds below 2^31 are taken as era 1
-- (2036-2104), as stamp_suite does.  frac * 10^9 / 2^32 = frac * 5^9 / 2^23, exact in a
-- double since frac * 5^9 < 2^53.
local function ntp_time(sec, frac)
    if sec < TWO31 then sec = sec + TWO32 end
    return NSTime.new(sec - NTP_UNIX_OFFSET, math.floor(frac * 1953125 / 8388608))
end

-- PTPv2 truncated: TAI seconds since 1970 and nanoseconds (RFC 8877 §4.3), shown in UTC.
local function ptp_time(sec, nsec)
    return NSTime.new(sec - stamp.prefs.tai_offset, math.min(nsec, 999999999))
end

-- A timestamp in the format its Error Estimate's Z bit gives; returns it as NSTime, or nil
-- when it is zero (not set).
local function add_timestamp(tree, range, fs, ptp)
    local sec, low = range(0, 4):uint(), range(4, 4):uint()
    local item, time
    if sec == 0 and low == 0 then
        item = tree:add(range, fs.name .. ": 0 (not set)")
    else
        time = ptp and ptp_time(sec, low) or ntp_time(sec, low)
        item = tree:add(fs.time, range, time)
        item:append_text(ptp and " (PTP)" or " (NTP)")
    end
    item:add(fs.sec, range(0, 4))
    if ptp then
        local n = item:add(fs.nsec, range(4, 4))
        if low > 999999999 then n:add_proto_expert_info(e.ptp_nsec) end
    else
        item:add(fs.frac, range(4, 4))
    end
    return time
end

local function error_estimate(value)
    return {
        s = math.floor(value / 32768),
        ptp = math.floor(value / 16384) % 2 == 1,
        scale = math.floor(value / 256) % 64,
        multiplier = value % 256,
    }
end

local function add_error_estimate(tree, range, fs)
    local ee = error_estimate(range:uint())
    local item = tree:add(fs.word, range)
    item:add(fs.s, range)
    item:add(fs.z, range)
    item:add(fs.scale, range)
    local m = item:add(fs.multiplier, range)
    local summary = (ee.s == 1 and "synchronized" or "unsynchronized") .. ", " .. (ee.ptp and "PTP" or "NTP")
    if ee.multiplier == 0 then
        m:add_proto_expert_info(e.multiplier_zero)
    else
        -- Error = Multiplier * 2^(Scale - 32) seconds
        local err = ee.multiplier * 2 ^ (ee.scale - 32)
        item:add(fs.error, range, err):set_generated()
        summary = summary .. string.format(", %.3g s", err)
    end
    item:append_text(" (" .. summary .. ")")
    return ee
end

------------------------------------------------------------------------------------------
-- Base packets (RFC 8762 Figs 3-6, with the SSID of RFC 8972 §3)
------------------------------------------------------------------------------------------

-- Each entry: octet offset, size, what is there; "ts" entries name the offset of the
-- Error Estimate whose Z bit gives their format.
local LAYOUTS = {
    sender_open = {
        { at = 0, size = 4, field = f.seq }, { at = 4, size = 8, ts = f.ts, ee_at = 12 },
        { at = 12, size = 2, ee = f.ee }, { at = 14, size = 2, ssid = true }, { at = 16, size = 28, mbz = true },
    },
    sender_auth = {
        { at = 0, size = 4, field = f.seq }, { at = 4, size = 12, mbz = true },
        { at = 16, size = 8, ts = f.ts, ee_at = 24 }, { at = 24, size = 2, ee = f.ee },
        { at = 26, size = 2, ssid = true }, { at = 28, size = 68, mbz = true }, { at = 96, size = 16, hmac = true },
    },
    reflector_open = {
        { at = 0, size = 4, field = f.seq }, { at = 4, size = 8, ts = f.ts, ee_at = 12 },
        { at = 12, size = 2, ee = f.ee }, { at = 14, size = 2, ssid = true },
        { at = 16, size = 8, ts = f.rx_ts, ee_at = 12 }, { at = 24, size = 4, field = f.ss_seq },
        { at = 28, size = 8, ts = f.ss_ts, ee_at = 36 }, { at = 36, size = 2, ee = f.ss_ee },
        { at = 38, size = 2, mbz = true }, { at = 40, size = 1, field = f.ss_ttl }, { at = 41, size = 3, mbz = true },
    },
    reflector_auth = {
        { at = 0, size = 4, field = f.seq }, { at = 4, size = 12, mbz = true },
        { at = 16, size = 8, ts = f.ts, ee_at = 24 }, { at = 24, size = 2, ee = f.ee },
        { at = 26, size = 2, ssid = true }, { at = 28, size = 4, mbz = true },
        { at = 32, size = 8, ts = f.rx_ts, ee_at = 24 }, { at = 40, size = 8, mbz = true },
        { at = 48, size = 4, field = f.ss_seq }, { at = 52, size = 12, mbz = true },
        { at = 64, size = 8, ts = f.ss_ts, ee_at = 72 }, { at = 72, size = 2, ee = f.ss_ee },
        { at = 74, size = 6, mbz = true }, { at = 80, size = 1, field = f.ss_ttl }, { at = 81, size = 15, mbz = true },
        { at = 96, size = 16, hmac = true },
    },
}

-- Adds the base fields that the packet holds in full; returns what the rest of the
-- dissection needs: the values by field and the timestamps by fields table.
local function dissect_base(tvb, tree, layout)
    local values, times = {}, {}
    for _, entry in ipairs(layout) do
        if entry.at + entry.size > tvb:len() then break end
        local range = tvb(entry.at, entry.size)
        if entry.ts then
            -- T1 comes before its Error Estimate: without one, the default format, NTP
            local ptp = entry.ee_at + 2 <= tvb:len() and error_estimate(tvb(entry.ee_at, 2):uint()).ptp
            times[entry.ts] = add_timestamp(tree, range, entry.ts, ptp)
        elseif entry.ee then
            values[entry.ee] = add_error_estimate(tree, range, entry.ee)
        elseif entry.ssid then
            values.ssid = range:uint()
            local item = tree:add(f.ssid, range)
            if values.ssid == 0 then item:append_text(" (none)") end
        elseif entry.mbz then
            tree:add(f.mbz, range)
        elseif entry.hmac then
            tree:add(f.hmac, range)
        else
            values[entry.field] = range:uint()
            tree:add(entry.field, range)
        end
    end
    return values, times
end

------------------------------------------------------------------------------------------
-- TLVs (RFC 8972 §4, RFC 9503 §3-4, RFC 9534 §3)
------------------------------------------------------------------------------------------

-- The header of a TLV or sub-TLV at `at`, whose Value may run to `stop`.  Returns the
-- header values with the tree item, and whether the Value fits; a Length past `stop` is
-- marked malformed.
local function add_header(tvb, tree, at, stop, fs, names, kind)
    local flags, ty, length = tvb(at, 1):uint(), tvb(at + 1, 1):uint(), tvb(at + 2, 2):uint()
    local fits = at + TLV_HEADER + length <= stop
    local item = tree:add(tvb(at, math.min(TLV_HEADER + length, stop - at)),
        string.format("%s %s (Type %d, Length %d)", registry_name(names, ty), kind, ty, length))
    local fl = item:add(fs.flags, tvb(at, 1))
    fl:add(fs.u, tvb(at, 1))
    fl:add(fs.m, tvb(at, 1))
    fl:add(fs.i, tvb(at, 1))
    fl:add(fs.reserved, tvb(at, 1))
    local ti = item:add(fs.type, tvb(at + 1, 1))
    if fs == f.sub then ti:append_text(" (" .. registry_name(names, ty) .. ")") end
    local li = item:add(fs.length, tvb(at + 2, 2))
    if not fits then li:add_proto_expert_info(e.overrun, "Length " .. length .. " runs past the end of the "
        .. (fs == f.sub and "TLV" or "packet")) end
    return { flags = flags, type = ty, length = length, item = item }, fits
end

-- Walks the sub-TLVs in [at, stop), handing each well-formed one to decode(tvb, at, sub, item).
local function dissect_sub_tlvs(tvb, tree, at, stop, names, decode)
    local subs = {}
    while at < stop do
        if stop - at < TLV_HEADER then
            tree:add(f.sub.value, tvb(at, stop - at)):add_proto_expert_info(e.trailing)
            break
        end
        local sub, fits = add_header(tvb, tree, at, stop, f.sub, names, "sub-TLV")
        if not fits then break end
        if not decode(tvb, at + TLV_HEADER, sub, sub.item) and sub.length > 0 then
            sub.item:add(f.sub.value, tvb(at + TLV_HEADER, sub.length))
        end
        subs[#subs + 1] = sub
        at = at + TLV_HEADER + sub.length
    end
    return subs
end

local function bad_length(item, length, expected)
    item:add_proto_expert_info(e.bad_length, "Length " .. length .. " invalid, " .. expected)
    return false  -- not decoded: the Value is shown as bytes
end

-- Location sub-TLVs: generic requests (1, 4, 7) are all MBZ; answers carry an address
-- followed by MBZ up to the request's size (RFC 8972 §4.2.1).
local LOCATION_ADDRESS = {
    [2] = { f.loc_eui48, 6 }, [3] = { f.loc_eui64, 8 }, [5] = { f.loc_dst_ipv4, 4 }, [6] = { f.loc_dst_ipv6, 16 },
    [8] = { f.loc_src_ipv4, 4 }, [9] = { f.loc_src_ipv6, 16 },
}

local function decode_location_sub(tvb, at, sub, item)
    local expected = LOCATION_SUB_LENGTH[sub.type]
    if not expected then return false end
    if sub.length ~= expected then return bad_length(item, sub.length, "expected " .. expected) end
    local address = LOCATION_ADDRESS[sub.type]
    local used = 0
    if address then
        item:add(address[1], tvb(at, address[2]))
        used = address[2]
    end
    if used < expected then item:add(f.mbz, tvb(at + used, expected - used)) end
    return true
end

-- Return Path sub-TLVs (RFC 9503 §4.1).
local function decode_return_path_sub(tvb, at, sub, item)
    local n = sub.length
    if sub.type == 1 then
        if n ~= 4 then return bad_length(item, n, "expected 4") end
        local cc = item:add(f.rp_cc, tvb(at, 4))
        cc:add(f.rp_cc_reply, tvb(at, 4))
    elseif sub.type == 2 then
        if n == 4 then item:add(f.rp_ipv4, tvb(at, 4))
        elseif n == 16 then item:add(f.rp_ipv6, tvb(at, 16))
        else return bad_length(item, n, "expected 4 or 16") end
    elseif sub.type == 3 then
        if n == 0 or n % 4 ~= 0 then return bad_length(item, n, "expected a non-zero multiple of 4") end
        for off = at, at + n - 4, 4 do
            local lse = item:add(f.rp_lse, tvb(off, 4))
            lse:add(f.rp_label, tvb(off, 4))
            lse:add(f.rp_tc, tvb(off, 4))
            lse:add(f.rp_s, tvb(off, 4))
            lse:add(f.rp_ttl, tvb(off, 4))
        end
    elseif sub.type == 4 then
        if n == 0 or n % 16 ~= 0 then return bad_length(item, n, "expected a non-zero multiple of 16") end
        for off = at, at + n - 16, 16 do item:add(f.rp_sid, tvb(off, 16)) end
    else
        return false
    end
    return true
end

local function no_sub_decoder() return false end

-- Value decoders: (tvb, at, tlv, item, ctx) with the Value at `at`, tlv.length octets,
-- all inside the packet.  `sizes` lists the valid Lengths, `min` a lower bound.
local TLVS = {
    [1] = { decode = function(tvb, at, tlv, item)
        item:add(f.padding, tvb(at, tlv.length))
    end },
    [2] = { min = 4, decode = function(tvb, at, tlv, item)
        item:add(f.loc_dst_port, tvb(at, 2))
        item:add(f.loc_src_port, tvb(at + 2, 2))
        dissect_sub_tlvs(tvb, item, at + 4, at + tlv.length, LOCATION_SUB_NAMES, decode_location_sub)
    end },
    [3] = { min = 4, decode = function(tvb, at, tlv, item)
        item:add(f.tsi_sync_in, tvb(at, 1))
        item:add(f.tsi_ts_in, tvb(at + 1, 1))
        item:add(f.tsi_sync_out, tvb(at + 2, 1))
        item:add(f.tsi_ts_out, tvb(at + 3, 1))
        dissect_sub_tlvs(tvb, item, at + 4, at + tlv.length, {}, no_sub_decoder)
    end },
    [4] = { sizes = { 4 }, decode = function(tvb, at, tlv, item)
        for _, field in ipairs({ f.cos_dscp1, f.cos_dscp2, f.cos_ecn, f.cos_rp, f.cos_reserved }) do
            item:add(field, tvb(at, 4))
        end
    end },
    [5] = { sizes = { 12 }, decode = function(tvb, at, tlv, item)
        item:add(f.dm_s_txc, tvb(at, 4))
        item:add(f.dm_r_rxc, tvb(at + 4, 4))
        item:add(f.dm_r_txc, tvb(at + 8, 4))
    end },
    [6] = { sizes = { 4 }, decode = function(tvb, at, tlv, item)
        local id = item:add(f.ar_id, tvb(at, 1))
        local value = math.floor(tvb(at, 1):uint() / 16)
        if value ~= 1 and value ~= 2 then id:add_proto_expert_info(e.access_id) end
        item:add(f.ar_resv, tvb(at, 1))
        item:add(f.ar_return_code, tvb(at + 1, 1))
        item:add(f.ar_reserved, tvb(at + 2, 2))
    end },
    [7] = { sizes = { 16 }, decode = function(tvb, at, tlv, item, ctx)
        item:add(f.fut_seq, tvb(at, 4))
        -- in the format of this packet's Error Estimate (RFC 8972 §4.7)
        add_timestamp(item, tvb(at + 4, 8), f.fut_ts, ctx.ptp)
        item:add(f.fut_mode, tvb(at + 12, 1))
        item:add(f.fut_reserved, tvb(at + 13, 3))
    end },
    [8] = { sizes = { 16 }, decode = function(tvb, at, tlv, item)
        item:add(f.hmac_tlv, tvb(at, 16))
    end },
    [9] = { sizes = { 4, 16 }, decode = function(tvb, at, tlv, item)
        item:add(tlv.length == 4 and f.dna_ipv4 or f.dna_ipv6, tvb(at, tlv.length))
    end },
    [10] = { decode = function(tvb, at, tlv, item)
        local subs = dissect_sub_tlvs(tvb, item, at, at + tlv.length, RETURN_PATH_SUB_NAMES, decode_return_path_sub)
        local control, redirect = false, false
        for _, sub in ipairs(subs) do
            if sub.type == 1 then control = true elseif sub.type >= 2 and sub.type <= 4 then redirect = true end
        end
        if control and redirect then item:add_proto_expert_info(e.rp_combination) end
    end },
    [11] = { sizes = { 4 }, decode = function(tvb, at, tlv, item)
        item:add(f.micro_sender, tvb(at, 2))
        item:add(f.micro_reflector, tvb(at + 2, 2))
    end },
}

local function length_problem(spec, ty, length)
    if ty >= 252 and ty <= 254 and length < 4 then return "Private Use needs 4 or more (Enterprise Number)" end
    if not spec then return nil end
    if spec.min and length < spec.min then return "expected " .. spec.min .. " or more" end
    if spec.sizes then
        for _, size in ipairs(spec.sizes) do
            if length == size then return nil end
        end
        return "expected " .. table.concat(spec.sizes, " or ")
    end
    return nil
end

local function dissect_tlv_value(tvb, at, tlv, item, ctx)
    local spec = TLVS[tlv.type]
    local problem = length_problem(spec, tlv.type, tlv.length)
    if problem then
        bad_length(item, tlv.length, problem)
    elseif spec then
        spec.decode(tvb, at, tlv, item, ctx)
        return
    elseif tlv.type >= 252 and tlv.type <= 254 then
        item:add(f.enterprise, tvb(at, 4))  -- RFC 8972 §4: Private Use starts with an SMI Enterprise Code
    end
    if tlv.length > 0 then item:add(f.tlv.value, tvb(at, tlv.length)) end
end

-- What a reflector says in the flags of its reply's TLVs (RFC 8972 §4).
local function flag_experts(tlv)
    if tlv.flags >= 128 then tlv.item:add_proto_expert_info(e.unrecognized) end
    if math.floor(tlv.flags / 64) % 2 == 1 then tlv.item:add_proto_expert_info(e.malformed) end
    if math.floor(tlv.flags / 32) % 2 == 1 then tlv.item:add_proto_expert_info(e.integrity) end
end

-- Rules about the TLV list as a whole.
local function check_tlv_list(tlvs, area, ctx)
    local hmac, last_hmac, return_paths, dna = false, nil, 0, nil
    for _, tlv in ipairs(tlvs) do
        -- Only Extra Padding may follow the HMAC TLV (RFC 8972 §4.8).
        if last_hmac and tlv.type ~= 1 then
            last_hmac.item:add_proto_expert_info(e.hmac_not_last)
            last_hmac = nil  -- said once
        end
        if tlv.type == 8 then hmac, last_hmac = true, tlv end
        if tlv.type == 10 then
            return_paths = return_paths + 1
            if return_paths > 1 then tlv.item:add_proto_expert_info(e.rp_repeated) end
        end
        if tlv.type == 9 then dna = tlv end
        if ctx.reply then flag_experts(tlv) end
    end
    -- In authenticated mode TLVs need an HMAC TLV, unless a single Extra Padding is all there is.
    if ctx.authenticated and #tlvs > 0 and not hmac and not (#tlvs == 1 and tlvs[1].type == 1) then
        area:add_proto_expert_info(e.hmac_missing)
    end
    if dna and not ctx.reply and ctx.ssid == 0 then dna.item:add_proto_expert_info(e.dna_no_ssid) end
end

-- The TLVs from `at` to the end; returns their names for the Info column.
local function dissect_tlvs(tvb, tree, at, ctx)
    local len = tvb:len()
    local area = tree:add(tvb(at, len - at), "TLVs")
    local tlvs, names = {}, {}
    while at < len do
        if len - at < TLV_HEADER then
            area:add(f.tlv.value, tvb(at, len - at)):add_proto_expert_info(e.trailing)
            break
        end
        local tlv, fits = add_header(tvb, area, at, len, f.tlv, TLV_NAMES, "TLV")
        tlvs[#tlvs + 1] = tlv
        names[#names + 1] = registry_name(TLV_NAMES, tlv.type)
        if not fits then break end
        dissect_tlv_value(tvb, at + TLV_HEADER, tlv, tlv.item, ctx)
        at = at + TLV_HEADER + tlv.length
    end
    check_tlv_list(tlvs, area, ctx)
    return names
end

------------------------------------------------------------------------------------------
-- Conversations: a reply linked to its request, and the round-trip time
------------------------------------------------------------------------------------------

local requests, responses, request_of  -- key -> request frame; request -> reply frame; reply -> request

function stamp.init()
    requests, responses, request_of = {}, {}, {}
end

-- Sender and reflector ends, the SSID and the Session-Sender's sequence number.
local function session_key(sender_addr, sender_port, reflector_addr, reflector_port, ssid, seq)
    return table.concat({ tostring(sender_addr), sender_port, tostring(reflector_addr), reflector_port, ssid, seq }, "|")
end

local function track(pinfo, tree, reply, values)
    local number, ssid = pinfo.number, values.ssid or 0
    if not pinfo.visited then
        if reply and values[f.ss_seq] then
            local req = requests[session_key(pinfo.dst, pinfo.dst_port, pinfo.src, pinfo.src_port, ssid,
                values[f.ss_seq])]
            if req then
                request_of[number] = req
                responses[req] = responses[req] or number
            end
        elseif not reply and values[f.seq] then
            requests[session_key(pinfo.src, pinfo.src_port, pinfo.dst, pinfo.dst_port, ssid, values[f.seq])] = number
        end
    end
    if request_of[number] then tree:add(f.request_in, request_of[number]):set_generated() end
    if responses[number] then tree:add(f.response_in, responses[number]):set_generated() end
end

-- (T4 - T1) - (T3 - T2), T4 being when the reply was captured: right at the sender when
-- the capture was taken there.
local function add_rtt(tree, times)
    local t1, t2, t3 = times[f.ss_ts], times[f.rx_ts], times[f.ts]
    local captured = frame_time()
    if not (t1 and t2 and t3 and captured) then return nil end
    local rtt = (captured.value - t1) - (t3 - t2)
    tree:add(f.rtt, rtt):set_generated()
    return rtt
end

------------------------------------------------------------------------------------------
-- The dissector
------------------------------------------------------------------------------------------

function stamp.dissector(tvb, pinfo, tree)
    local len = tvb:len()
    if len == 0 then return 0 end
    local authenticated = detect_authenticated(tvb, stamp.prefs.mode)
    local reply = detect_reply(tvb, pinfo, authenticated, stamp.prefs.direction)
    local base = authenticated and AUTH_BASE or OPEN_BASE
    local what = reply and "Session-Reflector reply" or "Session-Sender test packet"

    pinfo.cols.protocol = "STAMP"
    local root = tree:add(stamp, tvb(), "Simple Two-way Active Measurement Protocol, " .. what
        .. (authenticated and ", authenticated" or ", open"))
    root:add(f.direction, reply and REFLECTOR or SENDER):set_generated()
    root:add(f.authenticated, authenticated):set_generated()

    local layout = LAYOUTS[(reply and "reflector" or "sender") .. (authenticated and "_auth" or "_open")]
    local values, times = dissect_base(tvb, root, layout)
    if len < base then
        root:add_proto_expert_info(e.short, string.format("%d octets, shorter than the %d-octet %s base packet%s",
            len, base, authenticated and "authenticated" or "open",
            reply and len >= MIN_OPEN_REPLY and " (a TWAMP-Light reply?)" or ""))
    end

    local info = { reply and "Reflector" or "Sender" }
    if values[f.seq] then info[#info + 1] = "Seq=" .. values[f.seq] end
    if values[f.ss_seq] then info[#info + 1] = "SS-Seq=" .. values[f.ss_seq] end
    if values.ssid and values.ssid ~= 0 then info[#info + 1] = "SSID=" .. values.ssid end
    if authenticated then info[#info + 1] = "Auth" end

    if len > base then
        local ee = values[f.ee]
        local names = dissect_tlvs(tvb, root, base, {
            reply = reply, authenticated = authenticated, ssid = values.ssid or 0, ptp = ee and ee.ptp,
        })
        info[#info + 1] = "[" .. table.concat(names, ", ") .. "]"
    end

    track(pinfo, root, reply, values)
    if reply then
        local rtt = add_rtt(root, times)
        if rtt then info[#info + 1] = "RTT=" .. tostring(rtt) .. "s" end
    end
    pinfo.cols.info = table.concat(info, " ")
    return len
end

------------------------------------------------------------------------------------------
-- Heuristic for other UDP ports: claims only packets whose MBZ octets are zero, whose
-- Error Estimates are valid, whose timestamps are set and whose TLVs fill the packet
-- exactly.  A reply also needs a TTL and a T3 within a minute of T2.
------------------------------------------------------------------------------------------

local HEURISTIC_MBZ = {
    sender_open = { { 16, 28 } },
    sender_auth = { { 4, 12 }, { 28, 68 } },
    reflector_open = { { 38, 2 }, { 41, 3 } },
    reflector_auth = { { 4, 12 }, { 28, 4 }, { 40, 8 }, { 52, 12 }, { 74, 6 }, { 81, 15 } },
}

local function tlvs_fill(tvb, at)
    local len = tvb:len()
    while at < len do
        if len - at < TLV_HEADER then return false end
        local ty = tvb(at + 1, 1):uint()
        if ty == 0 or ty == 255 then return false end
        at = at + TLV_HEADER + tvb(at + 2, 2):uint()
    end
    return at == len
end

local function looks_like_stamp(tvb)
    local len = tvb:len()
    if len < OPEN_BASE then return false end
    local authenticated = detect_authenticated(tvb, AUTO)
    local ts, ee = 4, 12
    if authenticated then ts, ee = 16, 24 end
    local t2, ttl, ss_ee = 16, 40, 36
    if authenticated then t2, ttl, ss_ee = 32, 80, 72 end
    local reply = nonzero(tvb, t2, 8) or nonzero(tvb, ttl, 1)
    local layout = (reply and "reflector" or "sender") .. (authenticated and "_auth" or "_open")
    for _, span in ipairs(HEURISTIC_MBZ[layout]) do
        if nonzero(tvb, span[1], span[2]) then return false end
    end
    if tvb(ee + 1, 1):uint() == 0 or not nonzero(tvb, ts, 8) then return false end
    if reply then
        if tvb(ss_ee + 1, 1):uint() == 0 or tvb(ttl, 1):uint() == 0 then return false end
        -- T3 and T2 are the same clock's, a residence time apart: compare their seconds
        if math.abs(tvb(ts, 4):uint() - tvb(t2, 4):uint()) > 60 then return false end
    end
    return tlvs_fill(tvb, authenticated and AUTH_BASE or OPEN_BASE)
end

local function heuristic(tvb, pinfo, tree)
    if not looks_like_stamp(tvb) then return false end
    stamp.dissector(tvb, pinfo, tree)
    return true
end

------------------------------------------------------------------------------------------
-- Registration
------------------------------------------------------------------------------------------

local udp_port = DissectorTable.get("udp.port")
local registered_ports = stamp.prefs.ports
udp_port:add(registered_ports, stamp)  -- also makes STAMP a Decode As choice for any UDP port
stamp:register_heuristic("udp", heuristic)

function stamp.prefs_changed()
    if stamp.prefs.ports ~= registered_ports then
        udp_port:remove(registered_ports, stamp)
        registered_ports = stamp.prefs.ports
        udp_port:add(registered_ports, stamp)
        stamp_ports = parse_ports(registered_ports)
    end
end
