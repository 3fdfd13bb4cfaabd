"""Report service: diagnosis into problem lists, rectification tasks, annual reports."""
