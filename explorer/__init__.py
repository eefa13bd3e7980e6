"""The Streamlit shell: entry script, navigation, shared components and the bridge to core."""
