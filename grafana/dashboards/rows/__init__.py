"""The rows of the Session Management dashboard, one module each, top to bottom as
`session_management.ROWS` lists them. Each has `panels(config)`, its panels in layout order, built
from one small function per panel."""
