"Setup for softsil_nb: reads settings.ini (nbdev 2 layout); no pkg_resources."
from configparser import ConfigParser
import setuptools, shlex
from packaging.version import Version

cfg = ConfigParser(delimiters=['='])
cfg.read('settings.ini', encoding='utf-8')
cfg = cfg['DEFAULT']
assert Version(cfg['version'])  # a valid PEP 440 version

licenses = {'apache2': ('Apache Software License 2.0', 'OSI Approved :: Apache Software License')}
statuses = ['1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta', '5 - Production/Stable', '6 - Mature', '7 - Inactive']
py_versions = '3.10 3.11 3.12 3.13'.split()
lic = licenses[cfg['license'].lower()]
min_python = cfg['min_python']
requirements = shlex.split(cfg.get('requirements', ''))
dev_requirements = shlex.split(cfg.get('dev_requirements', ''))
timm_requirements = shlex.split(cfg.get('timm_requirements', ''))
accelerate_requirements = shlex.split(cfg.get('accelerate_requirements', ''))
lic_classifier = ['License :: ' + lic[1]]

setuptools.setup(
    name=cfg['lib_name'], version=cfg['version'], license=lic[0],
    classifiers=['Development Status :: ' + statuses[int(cfg['status'])], 'Intended Audience :: ' + cfg['audience'].title(),
                 'Natural Language :: ' + cfg['language'].title()] + lic_classifier
                + ['Programming Language :: Python :: ' + o for o in py_versions[py_versions.index(min_python):]],
    url=cfg['git_url'], packages=setuptools.find_packages(include=['softsil_nb', 'softsil_nb.*']), include_package_data=True,
    install_requires=requirements, extras_require={'dev': dev_requirements, 'timm': timm_requirements, 'accelerate': accelerate_requirements}, dependency_links=cfg.get('dep_links', '').split(),
    python_requires='>=' + min_python, long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown', zip_safe=False,
    entry_points={'console_scripts': cfg.get('console_scripts', '').split(), 'nbdev': [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"]},
    author=cfg['author'], author_email=cfg['author_email'], description=cfg['description'], keywords=cfg['keywords'])
