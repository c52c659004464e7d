"""Modbus meters (RTU over RS-485, TCP). Pure modules: `registers` (decoding register values) and
`plan` (merging point reads into few requests). The bus scheduler and source come with issue 3."""
