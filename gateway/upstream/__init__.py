"""What goes upstream and in which shape: the native schema v1 (encode) and the bridges' mappings."""
