-- Cisco "IPsec over TCP" (cTCP) records, reassembled: labctl's IPsec-over-TCP transport.
--
-- A record is a payload (UDP header 500 -> 500 + IKE, or ESP) followed by a 16-byte
-- trailer: 00000000, seq(2), flags(2), 21 45 6C 69 10, protocol (0x11 / 0x32), 01 00.
--
-- Wireshark's own "tcpencap" dissector shows such records too (one per segment, which is
-- what a real cTCP peer sends), but it passes the ESP on with the trailer still counted in
-- its reported length, so ESP cannot be decrypted through it. This dissector finds each
-- record by its trailer, reassembles records that span segments, and hands the exact
-- payload to the UDP (-> ISAKMP) or ESP dissector, so the usual decryption tables work:
--
--   tshark -X lua_script:tools/wireshark/ctcp.lua -d tcp.port==10000,ctcp -r FILE \
--          -o esp.enable_encryption_decode:TRUE -o 'uat:esp_sa:...'

local proto = Proto("ctcp", "Cisco IPsec over TCP record")

local f_trailer = ProtoField.bytes("ctcp.trailer", "Trailer")
local f_seq = ProtoField.uint16("ctcp.seq", "Sequence", base.HEX)
local f_flags = ProtoField.uint16("ctcp.flags", "Flags", base.HEX,
    { [0x0000] = "none / server to client", [0x4000] = "IKE client to server" })
local f_protocol = ProtoField.uint8("ctcp.protocol", "Protocol", base.HEX,
    { [0x11] = "IKE in UDP", [0x32] = "ESP", [0x33] = "AH" })
proto.fields = { f_trailer, f_seq, f_flags, f_protocol }

local MAGIC = "\x21\x45\x6c\x69\x10"
local udp = Dissector.get("udp")
local esp = Dissector.get("esp")

-- 1-based index of the trailer that ends the record starting at `from`, or nil
local function find_trailer(raw, from)
    local init = from + 16 -- a payload of at least 8 bytes, then 8 trailer bytes
    while true do
        local m = string.find(raw, MAGIC, init, true)
        if m == nil or #raw < m + 7 then
            return nil
        end
        local t = m - 8
        local p = raw:byte(m + 5)
        if raw:sub(t, t + 3) == "\0\0\0\0" and raw:byte(t + 6) % 16 == 0
            and raw:byte(t + 7) == 0 and raw:sub(m + 6, m + 7) == "\1\0"
            and (p == 0x11 or p == 0x32 or p == 0x33) then
            return t
        end
        init = m + 1
    end
end

function proto.dissector(tvb, pinfo, tree)
    local raw = tvb:raw()
    local offset = 0
    while offset < tvb:len() do
        local t = find_trailer(raw, offset + 1)
        if t == nil then
            pinfo.desegment_offset = offset
            pinfo.desegment_len = DESEGMENT_ONE_MORE_SEGMENT
            return tvb:len()
        end
        local trailer = t - 1 -- 0-based
        local size = trailer - offset
        local item = tree:add(proto, tvb(offset, size + 16), "cTCP record")
        item:add(f_trailer, tvb(trailer, 16))
        item:add(f_seq, tvb(trailer + 4, 2))
        item:add(f_flags, tvb(trailer + 6, 2))
        item:add(f_protocol, tvb(trailer + 13, 1))
        local protocol = tvb(trailer + 13, 1):uint()
        if protocol == 0x11 then
            udp:call(tvb(offset, size):tvb(), pinfo, tree)
        elseif protocol == 0x32 then
            esp:call(tvb(offset, size):tvb(), pinfo, tree)
        end
        offset = trailer + 16
    end
    return offset
end

DissectorTable.get("tcp.port"):add_for_decode_as(proto)
