"""Where a node keeps its certificate material: shared by the agent (credentials.py reads
it) and labctl on the host (lifecycle/pki.py installs it), which so imports neither the
agent's settings nor the IKE engine."""

PKI_DIR = "/etc/labctl/pki"
CA_FILE = "ca.pem"
CERT_FILE = "node.pem"
KEY_FILE = "node.key"
