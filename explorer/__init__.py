"""The Streamlit shell: entry script, navigation, services over core, widgets and views."""
