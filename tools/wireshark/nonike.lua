-- NAT-T drafts 00/01 on UDP 500: IKE, or ESP behind an 8-byte zero non-IKE marker
-- (draft-ietf-ipsec-udp-encaps-00/01; Linux's UDP_ENCAP_ESPINUDP_NON_IKE), or a one-byte
-- 0xFF NAT-keepalive.
--
-- Wireshark's ISAKMP dissector owns UDP 500 and has no notion of the marker: marked ESP
-- is misread as ISAKMP (zero cookies; some frames "malformed"). Decoded as "nonike", a
-- datagram that starts with 8 zero bytes and has room for an ESP header goes to the ESP
-- dissector (SPI, sequence; decryption tables work), 0xFF is a keepalive, and anything
-- else goes to ISAKMP as before:
--
--   tshark -X lua_script:tools/wireshark/nonike.lua -d udp.port==500,nonike -r FILE

local proto = Proto("nonike", "NAT-T draft 00/01 UDP 500")

local f_marker = ProtoField.bytes("nonike.marker", "Non-IKE marker")
local f_keepalive = ProtoField.uint8("nonike.keepalive", "NAT-keepalive", base.HEX)
proto.fields = { f_marker, f_keepalive }

local esp = Dissector.get("esp")
local isakmp = Dissector.get("isakmp")

function proto.dissector(tvb, pinfo, tree)
    local n = tvb:len()
    if n == 1 and tvb(0, 1):uint() == 0xff then
        pinfo.cols.protocol = "NAT-keepalive"
        tree:add(proto, tvb(0, 1)):add(f_keepalive, tvb(0, 1))
        return n
    end
    if n >= 16 and tvb(0, 4):uint() == 0 and tvb(4, 4):uint() == 0 then
        tree:add(proto, tvb(0, 8)):add(f_marker, tvb(0, 8))
        esp:call(tvb(8):tvb(), pinfo, tree)
        return n
    end
    return isakmp:call(tvb, pinfo, tree)
end

DissectorTable.get("udp.port"):add_for_decode_as(proto)
