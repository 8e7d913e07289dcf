-- IKE and ESP in a TCP stream, RFC 8229 framing: labctl's "IPsec over TCP".
--
-- tshark/Wireshark 4.0 have no RFC 8229 dissector (their "tcpencap" is Cisco's cTCP: one
-- packet per segment with a 16-byte trailer, no length field). This one reassembles the
-- stream, shows the "IKETCP" prefix and each record's length, and hands the record to the
-- built-in ISAKMP or ESP dissector (so ISAKMP/ESP decryption tables work as usual):
--
--   tshark -X lua_script:tools/wireshark/ipsec-tcp.lua -d tcp.port==10000,ipsectcp -r FILE
--
-- Record = Length (2 bytes, counts itself) + 00000000 + IKE message, or + ESP packet.

local proto = Proto("ipsectcp", "IPsec over TCP (RFC 8229 framing)")

local f_prefix = ProtoField.string("ipsectcp.prefix", "Stream prefix")
local f_length = ProtoField.uint16("ipsectcp.length", "Record length", base.DEC)
local f_marker = ProtoField.bytes("ipsectcp.non_esp_marker", "Non-ESP marker")
local f_kind = ProtoField.string("ipsectcp.kind", "Carries")
proto.fields = { f_prefix, f_length, f_marker, f_kind }

local e_short = ProtoExpert.new("ipsectcp.short", "Record shorter than a marker or an ESP header",
    expert.group.MALFORMED, expert.severity.ERROR)
local e_length = ProtoExpert.new("ipsectcp.bad_length", "Length smaller than its own 2 bytes",
    expert.group.MALFORMED, expert.severity.ERROR)
proto.experts = { e_short, e_length }

local PREFIX = "IKETCP"
local isakmp = Dissector.get("isakmp")
local esp = Dissector.get("esp")

local function is_prefix(tvb, offset)
    return tvb:len() - offset >= 6 and tvb(offset, 6):string() == PREFIX
end

local function record_length(tvb, pinfo, offset)
    if is_prefix(tvb, offset) then
        return 6
    end
    local length = tvb(offset, 2):uint()
    if length < 2 then
        return 2 -- shown as an error by dissect_record; the stream cannot be followed further
    end
    return length
end

local function dissect_record(tvb, pinfo, tree)
    if is_prefix(tvb, 0) and tvb:len() == 6 then
        local item = tree:add(proto, tvb(), "IPsec over TCP, stream prefix")
        item:add(f_prefix, tvb(0, 6))
        pinfo.cols.protocol = "IPsecTCP"
        pinfo.cols.info:append(" [IKETCP]")
        return 6
    end
    local length = tvb(0, 2):uint()
    local item = tree:add(proto, tvb(), "IPsec over TCP record")
    item:add(f_length, tvb(0, 2))
    if length < 2 then
        item:add_proto_expert_info(e_length)
        return tvb:len()
    end
    local size = length - 2
    if size >= 4 and tvb(2, 4):uint() == 0 then
        item:add(f_marker, tvb(2, 4))
        item:add(f_kind, "IKE")
        if size > 4 then
            isakmp:call(tvb(6, size - 4):tvb(), pinfo, tree)
        end
    elseif size >= 8 then
        item:add(f_kind, "ESP")
        esp:call(tvb(2, size):tvb(), pinfo, tree)
    else
        item:add_proto_expert_info(e_short)
    end
    return length
end

function proto.dissector(tvb, pinfo, tree)
    dissect_tcp_pdus(tvb, tree, 2, record_length, dissect_record, true)
    return tvb:len()
end

DissectorTable.get("tcp.port"):add_for_decode_as(proto)
